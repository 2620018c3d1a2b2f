"""SQLAlchemy Core tables: the single source of the schema. Alembic migrations create them.

Timestamps are stored in UTC. Wire ids (``client_id``) are unique per project; internal
integer keys link rows and give a stable order for keyset pagination.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "aggregated_labels",
    "aggregations",
    "annotation_links",
    "api_tokens",
    "assignments",
    "campaign_items",
    "campaigns",
    "dataset_lineage",
    "dataset_rows",
    "datasets",
    "discrepancy_tags",
    "evaluations",
    "feedback",
    "guidelines",
    "interactions",
    "memberships",
    "metadata",
    "model_events",
    "model_version_datasets",
    "model_versions",
    "projects",
    "score_cache",
    "score_errors",
    "signals",
    "toggles",
    "training_runs",
    "users",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

TS = DateTime(timezone=True)

projects = Table(
    "projects",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("description", Text, nullable=False, default=""),
    Column("risk_tier", String(10), nullable=False, default="medium"),
    Column("redaction_policy", String(10), nullable=False, default="redact"),
    Column("created_at", TS, nullable=False),
)

signals = Table(
    "signals",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("type", String(20), nullable=False),
    Column("scale_min", Float),
    Column("scale_max", Float),
    Column("labels", JSON),
    Column("description", Text, nullable=False, default=""),
    Column("created_at", TS, nullable=False),
    UniqueConstraint("project_id", "name"),
)

interactions = Table(
    "interactions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("client_id", String(200), nullable=False),
    Column("timestamp", TS, nullable=False),
    Column("model_version", String(200)),
    Column("input", Text, nullable=False),
    Column("output", Text, nullable=False),
    Column("context", JSON),
    Column("reference", Text),
    Column("attributes", JSON),
    Column("user_id", String(80)),
    Column("session_id", String(80)),
    Column("latency_ms", Float),
    Column("error", Text),
    Column("experiment", String(200)),
    Column("arm", String(200)),
    Column("propensity", Float),
    Column("consent", Boolean, nullable=False, default=False),
    Column("meta", JSON),
    Column("content_hash", String(40), nullable=False),
    Column("ingested_at", TS, nullable=False),
    UniqueConstraint("project_id", "client_id"),
    # Newest-first listing and time windows. No index on model_version: it cost a quarter
    # of the ingest rate, and version filters ride this one.
    Index(None, "project_id", "timestamp", "id"),
)

feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("client_id", String(200), nullable=False),
    Column("interaction_id", Integer, ForeignKey("interactions.id", ondelete="CASCADE"),
           nullable=False),
    Column("interaction_b_id", Integer, ForeignKey("interactions.id", ondelete="CASCADE")),
    Column("signal_id", Integer, ForeignKey("signals.id", ondelete="CASCADE"), nullable=False),
    # The value as given (typed JSON), plus a numeric and a text projection for queries.
    Column("value", JSON, nullable=False),
    Column("value_num", Float),
    Column("value_text", Text),
    Column("source", String(20), nullable=False),
    Column("rater_id", String(200)),
    Column("correction", Text),
    Column("comment", Text),
    Column("guideline_version", String(100)),
    Column("timestamp", TS, nullable=False),
    Column("content_hash", String(40), nullable=False),
    Column("ingested_at", TS, nullable=False),
    UniqueConstraint("project_id", "client_id"),
    Index(None, "interaction_id"),
    Index(None, "project_id", "signal_id", "timestamp"),
    Index(None, "project_id", "timestamp", "id"),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(100), nullable=False, unique=True),
    Column("password_hash", String(200), nullable=False),
    Column("is_superuser", Boolean, nullable=False, default=False),
    Column("created_at", TS, nullable=False),
)

memberships = Table(
    "memberships",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"),
           primary_key=True),
    Column("role", String(20), nullable=False),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("kind", String(10), nullable=False, default="api"),  # api | session
    # NULL project with role admin: an instance-wide administrator token.
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE")),
    Column("role", String(20)),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE")),
    Column("name", String(100), nullable=False, default=""),
    Column("created_at", TS, nullable=False),
    Column("expires_at", TS),
    Column("revoked_at", TS),
)

# -- measure: automated scorers -------------------------------------------------------------
# Results keyed by what the scorer read, not by interaction: identical content anywhere is
# scored once per scorer version.
score_cache = Table(
    "score_cache",
    metadata,
    Column("scorer", String(100), primary_key=True),
    Column("version", String(50), primary_key=True),
    Column("content_hash", String(40), primary_key=True),
    Column("value", JSON),
    Column("error", Text),
    Column("created_at", TS, nullable=False),
)

score_errors = Table(
    "score_errors",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("interaction_id", Integer, ForeignKey("interactions.id", ondelete="CASCADE"),
           nullable=False),
    Column("scorer", String(100), nullable=False),
    Column("version", String(50), nullable=False),
    Column("message", Text, nullable=False),
    Column("created_at", TS, nullable=False),
    UniqueConstraint("interaction_id", "scorer", "version"),
    Index(None, "project_id", "scorer", "version"),
)

# -- understand: two-channel evaluation --------------------------------------------------------
evaluations = Table(
    "evaluations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("human_signal", String(100), nullable=False),
    Column("metric_signals", JSON, nullable=False),
    Column("filters", JSON, nullable=False),
    Column("result", JSON, nullable=False),
    Column("created_by", String(100), nullable=False, default=""),
    Column("created_at", TS, nullable=False),
    Index(None, "project_id", "created_at"),
)

discrepancy_tags = Table(
    "discrepancy_tags",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("interaction_id", Integer, ForeignKey("interactions.id", ondelete="CASCADE"),
           nullable=False),
    Column("evaluation_id", Integer, ForeignKey("evaluations.id", ondelete="SET NULL")),
    Column("human_signal", String(100), nullable=False),
    Column("metric_signal", String(100), nullable=False),
    # metric_error | guideline_gap | rater_error | data_gap | prompt_issue | model_error | other
    Column("cause", String(20), nullable=False),
    Column("note", Text, nullable=False, default=""),
    Column("created_by", String(100), nullable=False, default=""),
    Column("created_at", TS, nullable=False),
    Index(None, "project_id", "cause", "created_at"),
    Index(None, "interaction_id"),
)

# -- annotate: guidelines, campaigns, assignments, aggregated labels -------------------------
# A guideline version is never edited: a change inserts the next version.
guidelines = Table(
    "guidelines",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("signal_id", Integer, ForeignKey("signals.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("body", Text, nullable=False),  # Markdown
    # [{"value": 1, "label": "poor", "description": "...", "examples": ["..."]}, ...]
    Column("rubric", JSON, nullable=False),
    Column("note", Text, nullable=False, default=""),  # what changed from the last version
    Column("created_by", String(100), nullable=False, default=""),
    Column("created_at", TS, nullable=False),
    UniqueConstraint("signal_id", "version"),
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("kind", String(20), nullable=False, default="standard"),  # standard | calibration
    Column("status", String(20), nullable=False, default="active"),  # active | closed
    # [{"signal": "helpful", "signal_id": 3, "guideline_version": 2}, ...]
    Column("signals", JSON, nullable=False),
    Column("raters", JSON, nullable=False),  # usernames
    Column("budget", Integer, nullable=False),  # items to annotate (gold items excluded)
    Column("overlap", Integer, nullable=False),  # k distinct raters per item
    Column("gold_rate", Float, nullable=False, default=0.0),
    Column("policy", JSON, nullable=False),  # {"disagreement": 0.7, "random": 0.3}
    Column("options", JSON, nullable=False),  # policy options and item filters
    Column("lease_minutes", Integer, nullable=False, default=30),
    Column("drift_threshold", Float, nullable=False, default=0.6),
    Column("seed", Integer, nullable=False, default=0),
    Column("created_by", String(100), nullable=False, default=""),
    Column("created_at", TS, nullable=False),
    Column("closed_at", TS),
    UniqueConstraint("project_id", "name"),
)

campaign_items = Table(
    "campaign_items",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("campaign_id", Integer, ForeignKey("campaigns.id", ondelete="CASCADE"),
           nullable=False),
    Column("interaction_id", Integer, ForeignKey("interactions.id", ondelete="CASCADE"),
           nullable=False),
    Column("interaction_b_id", Integer, ForeignKey("interactions.id", ondelete="CASCADE")),
    Column("position", Integer, nullable=False),  # serving order
    Column("policy", String(50), nullable=False),  # the policy that picked it ("gold" for gold)
    Column("score", Float),  # the policy's score (disagreement, closeness to threshold...)
    Column("stratum", String(200)),
    Column("is_gold", Boolean, nullable=False, default=False),
    Column("gold_value", JSON),  # {"signal": value} for gold items
    # Assignments that count toward the overlap: leased (unexpired) or done.
    Column("n_active", Integer, nullable=False, default=0),
    Column("n_done", Integer, nullable=False, default=0),
    Index(None, "campaign_id", "is_gold", "n_active", "position"),
    Index(None, "campaign_id", "interaction_id"),
)

assignments = Table(
    "assignments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("campaign_id", Integer, ForeignKey("campaigns.id", ondelete="CASCADE"),
           nullable=False),
    Column("item_id", Integer, ForeignKey("campaign_items.id", ondelete="CASCADE"),
           nullable=False),
    Column("rater", String(100), nullable=False),  # username
    Column("status", String(10), nullable=False),  # leased | done | skipped | expired
    Column("swapped", Boolean, nullable=False, default=False),  # pairwise: B shown left
    Column("leased_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),
    Column("finished_at", TS),
    Column("skip_reason", Text),
    # One row per (item, rater): an item never goes to the same rater twice.
    UniqueConstraint("item_id", "rater"),
    Index(None, "campaign_id", "rater", "status"),
    Index(None, "campaign_id", "status", "expires_at"),
    # The rater's latest assignment: where in the serving order to look next.
    Index(None, "campaign_id", "rater", "id"),
)

# Links the feedback rows a rater submitted to the assignment they answered.
annotation_links = Table(
    "annotation_links",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("campaign_id", Integer, ForeignKey("campaigns.id", ondelete="CASCADE"),
           nullable=False),
    Column("assignment_id", Integer, ForeignKey("assignments.id", ondelete="CASCADE"),
           nullable=False),
    Column("feedback_id", Integer, ForeignKey("feedback.id", ondelete="CASCADE"),
           nullable=False, unique=True),
    Column("signal_id", Integer, ForeignKey("signals.id", ondelete="CASCADE"), nullable=False),
    Index(None, "campaign_id", "signal_id"),
    Index(None, "assignment_id"),
)

aggregations = Table(
    "aggregations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("signal_id", Integer, ForeignKey("signals.id", ondelete="CASCADE"), nullable=False),
    Column("campaign_id", Integer, ForeignKey("campaigns.id", ondelete="SET NULL")),
    Column("method", String(30), nullable=False),  # majority | dawid-skene | mean | bradley-terry
    Column("params", JSON, nullable=False),
    Column("summary", JSON, nullable=False),  # rater confusion matrices, rankings, iterations
    Column("n_items", Integer, nullable=False),
    Column("created_by", String(100), nullable=False, default=""),
    Column("created_at", TS, nullable=False),
    Index(None, "project_id", "signal_id", "created_at"),
)

aggregated_labels = Table(
    "aggregated_labels",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("aggregation_id", Integer, ForeignKey("aggregations.id", ondelete="CASCADE"),
           nullable=False),
    Column("interaction_id", Integer, ForeignKey("interactions.id", ondelete="CASCADE"),
           nullable=False),
    Column("interaction_b_id", Integer, ForeignKey("interactions.id", ondelete="CASCADE")),
    Column("value", JSON, nullable=False),
    Column("value_num", Float),
    Column("confidence", Float),  # posterior probability of the label, or None for means
    Column("se", Float),  # standard error of a (bias-corrected) mean, None for labels
    Column("n_ratings", Integer, nullable=False),
    Index(None, "aggregation_id"),
    Index(None, "interaction_id"),
)

# -- improve: datasets, training runs, the model registry and toggles --------------------------
# A built dataset is immutable: a rebuild is a new version. Row data by recipe:
#   preference {"prompt", "chosen", "rejected"}; sft {"prompt", "completion"};
#   kto {"prompt", "completion", "label": bool}; labels {"text", "label", "confidence"}.
datasets = Table(
    "datasets",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("version", Integer, nullable=False),
    Column("recipe", String(30), nullable=False),
    Column("params", JSON, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("counts", JSON, nullable=False),  # rows per split, per label, dropped by reason
    Column("card", JSON, nullable=False),  # the dataset card's facts
    Column("created_by", String(100), nullable=False, default=""),
    Column("created_at", TS, nullable=False),
    UniqueConstraint("project_id", "name", "version"),
)

dataset_rows = Table(
    "dataset_rows",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("dataset_id", Integer, ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("split", String(20), nullable=False),
    Column("group_key", String(64), nullable=False),  # hash of the prompt (split grouping)
    Column("data", JSON, nullable=False),
    Column("feedback_ids", JSON, nullable=False),  # lineage: the feedback behind the row
    Index(None, "dataset_id", "split", "position"),
)

# Reverse lineage: which datasets (and so which model versions) a feedback row fed.
dataset_lineage = Table(
    "dataset_lineage",
    metadata,
    Column("dataset_id", Integer, ForeignKey("datasets.id", ondelete="CASCADE"),
           primary_key=True),
    Column("feedback_id", Integer, ForeignKey("feedback.id", ondelete="CASCADE"),
           primary_key=True),
    Index(None, "feedback_id"),
)

training_runs = Table(
    "training_runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("trainer", String(50), nullable=False),
    Column("dataset_id", Integer, ForeignKey("datasets.id", ondelete="SET NULL")),
    Column("params", JSON, nullable=False),
    Column("seed", Integer, nullable=False),
    Column("environment", JSON, nullable=False),  # python and library versions
    Column("metrics", JSON),
    Column("artifact_hash", String(64)),
    Column("status", String(20), nullable=False),  # running | succeeded | failed
    Column("error", Text),
    Column("created_by", String(100), nullable=False, default=""),
    Column("started_at", TS, nullable=False),
    Column("finished_at", TS),
    Index(None, "project_id", "started_at"),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("component", String(50), nullable=False),  # ranking | generation | classification…
    Column("name", String(200), nullable=False),  # the version label served to callers
    Column("status", String(20), nullable=False),  # candidate|staged|live|retired|rolled_back
    Column("artifact_uri", Text),
    Column("artifact_hash", String(64)),
    Column("trainer", String(50)),
    Column("training_run_id", Integer, ForeignKey("training_runs.id", ondelete="SET NULL")),
    Column("parent_id", Integer, ForeignKey("model_versions.id", ondelete="SET NULL")),
    Column("metrics", JSON, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("created_by", String(100), nullable=False, default=""),
    Column("created_at", TS, nullable=False),
    UniqueConstraint("project_id", "component", "name"),
)

model_version_datasets = Table(
    "model_version_datasets",
    metadata,
    Column("model_version_id", Integer, ForeignKey("model_versions.id", ondelete="CASCADE"),
           primary_key=True),
    Column("dataset_id", Integer, ForeignKey("datasets.id", ondelete="CASCADE"),
           primary_key=True),
    Index(None, "dataset_id"),
)

toggles = Table(
    "toggles",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("component", String(50), nullable=False),
    Column("rules", JSON, nullable=False),  # see improve.toggles.Toggle.from_dict
    Column("updated_by", String(100), nullable=False, default=""),
    Column("updated_at", TS, nullable=False),
    UniqueConstraint("project_id", "component"),
)

# Every change of a version's status or of a toggle, in order (governance audits these).
model_events = Table(
    "model_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("model_version_id", Integer, ForeignKey("model_versions.id", ondelete="CASCADE")),
    Column("component", String(50), nullable=False),
    Column("kind", String(30), nullable=False),  # registered|promoted|rolled_back|retired|toggle
    Column("from_status", String(20)),
    Column("to_status", String(20)),
    Column("detail", JSON, nullable=False),
    Column("actor", String(100), nullable=False, default=""),
    Column("created_at", TS, nullable=False),
    Index(None, "project_id", "component", "created_at"),
)

# -- test: experiments, exposures, observations, bandits -----------------------------------------
# An experiment's design is frozen once it starts; a changed design is a new experiment that
# supersedes the old one (``supersedes_id``). See experiments/design.py for the design JSON.
experiments = Table(
    "experiments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),  # what interactions carry in `experiment`
    Column("kind", String(10), nullable=False),  # ab | bandit
    Column("status", String(20), nullable=False),  # draft|running|stopped|decided|superseded
    Column("hypothesis", Text, nullable=False, default=""),
    Column("component", String(50)),  # the model component whose versions are the arms
    Column("design", JSON, nullable=False),
    Column("design_hash", String(64), nullable=False),
    Column("salt", String(64), nullable=False),
    Column("supersedes_id", Integer, ForeignKey("experiments.id", ondelete="SET NULL")),
    # Watermarks of the incremental refresh from interactions and feedback.
    Column("seen_interaction_id", Integer, nullable=False, default=0),
    Column("seen_feedback_id", Integer, nullable=False, default=0),
    Column("stop_reason", Text),
    Column("created_by", String(100), nullable=False, default=""),
    Column("created_at", TS, nullable=False),
    Column("started_at", TS),
    Column("stopped_at", TS),
    UniqueConstraint("project_id", "name"),
)

# First exposure of each unit (a pseudonymised user, session or interaction id).
experiment_exposures = Table(
    "experiment_exposures",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.id", ondelete="CASCADE"),
           nullable=False),
    Column("unit", String(200), nullable=False),
    Column("arm", Integer, nullable=False),  # index into design["arms"]
    Column("propensity", Float, nullable=False),
    Column("covariate", Float),  # pre-period value for CUPED, when the caller has one
    Column("exposed_at", TS, nullable=False),
    UniqueConstraint("experiment_id", "unit"),
    Index(None, "experiment_id", "arm", "exposed_at"),
)

# Metric values of exposed units, copied from feedback on the experiment's interactions by
# the incremental refresh, in the narrow shape the analysis scans.
experiment_observations = Table(
    "experiment_observations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.id", ondelete="CASCADE"),
           nullable=False),
    Column("signal_id", Integer, ForeignKey("signals.id", ondelete="CASCADE"), nullable=False),
    Column("unit", String(200), nullable=False),
    Column("arm", Integer, nullable=False),
    Column("value", Float, nullable=False),
    Column("observed_at", TS, nullable=False),
    Column("feedback_id", Integer, ForeignKey("feedback.id", ondelete="SET NULL")),
    Index(None, "experiment_id", "signal_id", "arm", "unit", "value"),
)

# Each planned or ad-hoc look at a running experiment (group-sequential spending needs the
# information fractions of earlier looks), with the analysis as it stood.
experiment_looks = Table(
    "experiment_looks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.id", ondelete="CASCADE"),
           nullable=False),
    Column("information_fraction", Float),
    Column("result", JSON, nullable=False),
    Column("created_by", String(100), nullable=False, default=""),
    Column("created_at", TS, nullable=False),
    Index(None, "experiment_id", "created_at"),
)

experiment_decisions = Table(
    "experiment_decisions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.id", ondelete="CASCADE"),
           nullable=False),
    Column("decision", String(20), nullable=False),  # ship | iterate | abandon
    Column("arm", String(200)),  # the arm shipped
    Column("rationale", Text, nullable=False),
    Column("analysis", JSON, nullable=False),  # the analysis the decision was made on
    Column("decided_by", String(100), nullable=False, default=""),
    Column("created_at", TS, nullable=False),
    Index(None, "experiment_id"),
)

# Bandit state per arm (sufficient statistics of the rewards seen so far).
bandit_arms = Table(
    "bandit_arms",
    metadata,
    Column("experiment_id", Integer, ForeignKey("experiments.id", ondelete="CASCADE"),
           primary_key=True),
    Column("arm", Integer, primary_key=True),
    Column("n", Integer, nullable=False, default=0),
    Column("reward_sum", Float, nullable=False, default=0.0),
    Column("reward_sumsq", Float, nullable=False, default=0.0),
    Column("updated_at", TS, nullable=False),
)

# Every bandit decision with the probability it had; the reward when it arrives.
bandit_decisions = Table(
    "bandit_decisions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.id", ondelete="CASCADE"),
           nullable=False),
    Column("unit", String(200)),
    Column("arm", Integer, nullable=False),
    Column("propensity", Float, nullable=False),
    Column("probabilities", JSON, nullable=False),  # the policy's whole distribution
    Column("context", JSON),
    Column("reward", Float),
    Column("decided_at", TS, nullable=False),
    Column("rewarded_at", TS),
    Index(None, "experiment_id", "id"),
)

# -- understand: triage, themes, findings --------------------------------------------------
# Project rules that route (and may escalate) feedback; tried in `position` order.
triage_rules = Table(
    "triage_rules",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("position", Integer, nullable=False),
    Column("route", String(30), nullable=False),
    Column("conditions", JSON, nullable=False),  # see triage/rules.py
    Column("escalate", Boolean, nullable=False, default=False),
    Column("created_by", String(100), nullable=False, default=""),
    Column("created_at", TS, nullable=False),
    UniqueConstraint("project_id", "name"),
)

# One row per triaged feedback item: its route, how it was decided, and where it stands.
triage_items = Table(
    "triage_items",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("feedback_id", Integer, ForeignKey("feedback.id", ondelete="CASCADE"),
           nullable=False, unique=True),
    Column("route", String(30)),  # None while it waits in the human queue
    Column("suggested_route", String(30)),
    Column("confidence", Float),
    Column("method", String(20), nullable=False),  # rule | classifier | human
    Column("rule_id", Integer, ForeignKey("triage_rules.id", ondelete="SET NULL")),
    Column("status", String(20), nullable=False),  # routed | queued | escalated | resolved
    Column("escalated_to", String(20)),  # the role on duty
    Column("reason", Text),
    Column("decided_by", String(100)),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Index(None, "project_id", "status", "id"),
    Index(None, "project_id", "route"),
)

theme_runs = Table(
    "theme_runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("method", String(20), nullable=False),  # embeddings | tfidf
    Column("params", JSON, nullable=False),
    Column("n_items", Integer, nullable=False),
    Column("created_by", String(100), nullable=False, default=""),
    Column("created_at", TS, nullable=False),
)

themes = Table(
    "themes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", Integer, ForeignKey("theme_runs.id", ondelete="CASCADE"), nullable=False),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("label", String(200), nullable=False),
    Column("keywords", JSON, nullable=False),
    Column("size", Integer, nullable=False),
    Column("examples", JSON, nullable=False),  # representative feedback ids
    Column("trend", JSON, nullable=False),  # counts per week
    Index(None, "run_id"),
)

theme_members = Table(
    "theme_members",
    metadata,
    Column("theme_id", Integer, ForeignKey("themes.id", ondelete="CASCADE"), primary_key=True),
    Column("feedback_id", Integer, ForeignKey("feedback.id", ondelete="CASCADE"),
           primary_key=True),
    Column("distance", Float),
    Index(None, "feedback_id"),
)

findings = Table(
    "findings",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("title", String(200), nullable=False),
    Column("description", Text, nullable=False, default=""),
    # new -> triaged -> in_progress -> fixed -> verified -> closed
    Column("status", String(20), nullable=False),
    Column("owner", String(100)),
    Column("route", String(30)),
    Column("theme_id", Integer, ForeignKey("themes.id", ondelete="SET NULL")),
    Column("component", String(50)),
    # Prioritisation inputs (reach comes from the data, the others from people) and result.
    Column("reach_users", Integer, nullable=False, default=0),
    Column("reach_interactions", Integer, nullable=False, default=0),
    Column("severity", Integer),  # 1 (cosmetic) .. 5 (critical)
    Column("effort", Float),  # person-days
    Column("risk", Integer),  # 1 .. 5
    Column("confidence", Float),  # 0 .. 1
    Column("priority", Float),
    Column("created_by", String(100), nullable=False, default=""),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Index(None, "project_id", "status", "priority"),
)

finding_feedback = Table(
    "finding_feedback",
    metadata,
    Column("finding_id", Integer, ForeignKey("findings.id", ondelete="CASCADE"),
           primary_key=True),
    Column("feedback_id", Integer, ForeignKey("feedback.id", ondelete="CASCADE"),
           primary_key=True),
    Index(None, "feedback_id"),
)

# -- release: risk policies, gates, sign-offs, releases ------------------------------------
# Per-project (component "") or per-component tier and policy overrides; the defaults per tier
# live in governance/policy.py.
risk_policies = Table(
    "risk_policies",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("component", String(50), nullable=False, default=""),
    Column("risk_tier", String(10), nullable=False),
    Column("overrides", JSON, nullable=False),
    Column("updated_by", String(100), nullable=False, default=""),
    Column("updated_at", TS, nullable=False),
    UniqueConstraint("project_id", "component"),
)

gates = Table(
    "gates",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("component", String(50), nullable=False),
    Column("model_version_id", Integer, ForeignKey("model_versions.id", ondelete="CASCADE"),
           nullable=False),
    Column("experiment_id", Integer, ForeignKey("experiments.id", ondelete="SET NULL")),
    Column("criteria", JSON, nullable=False),  # the pre-set criteria
    Column("result", JSON),  # each criterion: pass/fail with its evidence
    Column("status", String(20), nullable=False),  # pending | passed | failed
    Column("risk_tier", String(10), nullable=False),
    Column("created_by", String(100), nullable=False, default=""),
    Column("created_at", TS, nullable=False),
    Column("evaluated_at", TS),
    Index(None, "project_id", "component", "created_at"),
)

signoffs = Table(
    "signoffs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("gate_id", Integer, ForeignKey("gates.id", ondelete="CASCADE"), nullable=False),
    Column("actor", String(100), nullable=False),
    Column("role", String(20), nullable=False),  # the project role the actor signed as
    Column("capacity", String(20), nullable=False),  # maintainer | expert | safety | admin
    Column("decision", String(10), nullable=False),  # approve | reject
    Column("comment", Text, nullable=False, default=""),
    Column("created_at", TS, nullable=False),
    UniqueConstraint("gate_id", "actor", "capacity"),
)

releases = Table(
    "releases",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("component", String(50), nullable=False),
    Column("model_version_id", Integer, ForeignKey("model_versions.id", ondelete="CASCADE"),
           nullable=False),
    Column("gate_id", Integer, ForeignKey("gates.id", ondelete="SET NULL")),
    Column("rollback_to_id", Integer, ForeignKey("model_versions.id", ondelete="SET NULL")),
    Column("cohort", JSON),  # None: everyone; else the toggle rule it was released behind
    Column("status", String(20), nullable=False),  # released | rolled_back
    Column("case_study", JSON, nullable=False),
    Column("released_by", String(100), nullable=False, default=""),
    Column("released_at", TS, nullable=False),
    Column("rolled_back_at", TS),
    Index(None, "project_id", "component", "released_at"),
)

# Typed links that the provenance graph walks and no other table holds (feedback→dataset,
# dataset→model version, version→experiment, experiment→release live in their own tables).
provenance_links = Table(
    "provenance_links",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("src_kind", String(20), nullable=False),  # finding | dataset | model_version | …
    Column("src_id", Integer, nullable=False),
    Column("dst_kind", String(20), nullable=False),
    Column("dst_id", Integer, nullable=False),
    Column("relation", String(30), nullable=False),  # addresses | trained_on | tested_by …
    Column("created_by", String(100), nullable=False, default=""),
    Column("created_at", TS, nullable=False),
    UniqueConstraint("src_kind", "src_id", "dst_kind", "dst_id", "relation"),
    Index(None, "dst_kind", "dst_id"),
)

# -- audit: an append-only, hash-chained log of every state change ---------------------------
# Each entry's hash covers its content and the previous entry's hash (governance/audit.py);
# UPDATE and DELETE are refused by triggers (migration 0006). `audit_head` holds the chain's
# tip so appends serialise on one row lock on PostgreSQL.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer),  # no foreign key: entries outlive what they describe
    Column("actor", String(100), nullable=False),
    Column("action", String(50), nullable=False),
    Column("entity_kind", String(30), nullable=False),
    Column("entity_id", String(200)),
    Column("before", JSON),
    Column("after", JSON),
    Column("reason", Text),
    Column("created_at", TS, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index(None, "project_id", "id"),
    Index(None, "entity_kind", "entity_id"),
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True),  # always 1
    Column("last_id", Integer, nullable=False),
    Column("last_hash", String(64), nullable=False),
)
