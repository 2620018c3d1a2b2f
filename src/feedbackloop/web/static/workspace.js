// The annotator workspace, improved: keyboard shortcuts and a live word-level diff of the
// correction against the output. Without scripts the page is a plain form that works the
// same way. User text is only ever placed with textContent, never parsed as HTML.
(() => {
  "use strict";

  const form = document.getElementById("rate-form");
  if (!form) return;
  const skipForm = document.getElementById("skip-form");
  const reason = document.getElementById("reason");
  const guideline = document.getElementById("guideline");
  const correction = document.getElementById("correction");
  const comment = document.getElementById("comment");
  const diffBox = document.getElementById("diff");
  const output = document.getElementById("output");
  const fieldsets = Array.from(form.querySelectorAll("fieldset.signal"));

  // -- which signal the digit keys answer --------------------------------------------
  const answered = (fs) => fs.querySelector("input[type=radio]:checked") !== null;
  const keyed = (fs) => fs.querySelector("input[data-key]") !== null;
  let active = null;

  function setActive(fs) {
    for (const f of fieldsets) f.classList.toggle("active", f === fs);
    active = fs;
  }

  function nextUnanswered() {
    return fieldsets.find((fs) => keyed(fs) && !answered(fs)) ||
      fieldsets.find((fs) => keyed(fs)) || null;
  }

  setActive(nextUnanswered());
  for (const fs of fieldsets) {
    fs.addEventListener("click", () => { if (keyed(fs)) setActive(fs); });
    fs.addEventListener("change", () => {
      fs.classList.add("answered");
      const later = fieldsets.find((f) => keyed(f) && !answered(f));
      if (later) setActive(later);
    });
  }

  function choose(key) {
    const fs = active || nextUnanswered();
    if (!fs) return false;
    const input = fs.querySelector(`input[data-key="${CSS.escape(key)}"]`);
    if (!input) return false;
    input.checked = true;
    input.dispatchEvent(new Event("change", { bubbles: true }));
    return true;
  }

  // -- keyboard -------------------------------------------------------------------------
  const typing = (el) => el instanceof HTMLTextAreaElement ||
    (el instanceof HTMLInputElement && !["radio", "checkbox", "button", "submit"]
      .includes(el.type)) || el instanceof HTMLSelectElement || el?.isContentEditable;

  let submitting = false;
  function submitOnce(f) {
    if (submitting) return;
    submitting = true;
    f.requestSubmit();
  }
  form.addEventListener("submit", () => { submitting = true; });
  skipForm?.addEventListener("submit", (event) => {
    if (!reason.value.trim()) {
      event.preventDefault();
      submitting = false;
      reason.focus();
      reason.setCustomValidity("Say why you skip this item.");
      reason.reportValidity();
    }
  });
  reason?.addEventListener("input", () => reason.setCustomValidity(""));

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    const target = event.target;
    if (typing(target)) {
      if (event.key === "Escape") target.blur();
      return; // Enter in the reason field submits the skip form natively
    }
    const key = event.key;
    if (key === "Enter" && (target instanceof HTMLButtonElement ||
                            target instanceof HTMLAnchorElement ||
                            target instanceof HTMLElement && target.tagName === "SUMMARY")) {
      return; // Enter on a button, link or disclosure does what it always does
    }
    let handled = true;
    if (key === "Enter") submitOnce(form);
    else if (/^[0-9]$/.test(key)) handled = choose(key);
    else if (key === "a" || key === "ArrowLeft") handled = choose("a");
    else if (key === "b" || key === "ArrowRight") handled = choose("b");
    else if (key === "t") handled = choose("t");
    else if (key === "s" && reason) reason.focus();
    else if (key === "g" && guideline) guideline.open = !guideline.open;
    else if (key === "c" && correction) {
      correction.closest("details").open = true;
      if (!correction.value && output) correction.value = output.textContent;
      correction.focus();
      renderDiff();
    } else if (key === "m" && comment) comment.focus();
    else handled = false;
    if (handled) event.preventDefault();
  });

  // -- live word-level diff -------------------------------------------------------------
  // Tokens are words and the whitespace between them; the longest common subsequence of
  // the two token lists marks what was kept, the rest is deleted or inserted.
  const MAX_CELLS = 4_000_000;
  const tokens = (text) => text.match(/\s+|[^\s]+/g) || [];

  function diff(a, b) {
    let start = 0;
    while (start < a.length && start < b.length && a[start] === b[start]) start++;
    let endA = a.length, endB = b.length;
    while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) { endA--; endB--; }
    const ops = a.slice(0, start).map((t) => ["same", t]);
    const x = a.slice(start, endA), y = b.slice(start, endB);
    if (x.length * y.length > MAX_CELLS) {
      x.forEach((t) => ops.push(["del", t]));
      y.forEach((t) => ops.push(["ins", t]));
    } else {
      const n = x.length, m = y.length;
      const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
      for (let i = n - 1; i >= 0; i--) {
        for (let j = m - 1; j >= 0; j--) {
          lcs[i][j] = x[i] === y[j] ? lcs[i + 1][j + 1] + 1
            : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
        }
      }
      let i = 0, j = 0;
      while (i < n && j < m) {
        if (x[i] === y[j]) { ops.push(["same", x[i]]); i++; j++; }
        else if (lcs[i + 1][j] >= lcs[i][j + 1]) ops.push(["del", x[i++]]);
        else ops.push(["ins", y[j++]]);
      }
      while (i < n) ops.push(["del", x[i++]]);
      while (j < m) ops.push(["ins", y[j++]]);
    }
    a.slice(endA).forEach((t) => ops.push(["same", t]));
    return ops;
  }

  function renderDiff() {
    if (!correction || !diffBox || !output) return;
    const text = correction.value;
    diffBox.replaceChildren();
    if (!text.trim()) { diffBox.hidden = true; return; }
    const ops = diff(tokens(output.textContent), tokens(text));
    let inserted = 0, deleted = 0;
    for (const [op, tok] of ops) {
      if (op === "same") { diffBox.append(document.createTextNode(tok)); continue; }
      const el = document.createElement(op === "ins" ? "ins" : "del");
      el.textContent = tok;
      diffBox.append(el);
      if (/\S/.test(tok)) op === "ins" ? inserted++ : deleted++;
    }
    const summary = document.createElement("p");
    summary.className = "sub diff-summary";
    summary.textContent = `${inserted} word${inserted === 1 ? "" : "s"} added, ` +
      `${deleted} removed`;
    diffBox.prepend(summary);
    diffBox.hidden = false;
  }

  correction?.addEventListener("input", renderDiff);
  renderDiff();
})();
