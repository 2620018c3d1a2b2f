"""The parts of the SDK behind :class:`feedbackloop.Client`: the batching queue, the
remote (HTTP) and embedded (store) transports, flush results and DataFrame conversion.
Import the client from :mod:`feedbackloop` or :mod:`feedbackloop.client`."""
