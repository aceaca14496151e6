"""Serving: `kzoo serve` speaks TF Serving's REST and gRPC APIs; `Client` talks to it,
to TF Serving, and to anything else speaking that API.

Modules: `config` (TF Serving's models.config, version policies), `repository`
(the served versions, kept in step with the file system, and their signatures),
`codec` (REST JSON / TensorProto <-> NumPy, checked before allocating), `batching`
(dynamic batching, bounded queue), `errors` (status codes, `as_serving_error`),
`server` (`ModelServer`), `rest` (Starlette app, demo page), `grpc_service`
(PredictionService / ModelService), `metrics` (Prometheus, kzoo's and TF Serving's
names), `loadtest`, `client` (`Client`), `deploy` (checks of the deployment files
under `serving/`).
"""


def __getattr__(name):  # lazy: `import kzoo.serving` stays light
    if name == "Client":
        from kzoo.serving.client import Client

        return Client
    if name == "ModelServer":
        from kzoo.serving.server import ModelServer

        return ModelServer
    raise AttributeError(name)


__all__ = ["Client", "ModelServer"]
