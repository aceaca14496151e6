"""Serving: `kzoo serve` speaks TF Serving's REST and gRPC APIs; `Client` talks to it,
to TF Serving, and to anything else speaking that API.

Modules: `repository` (the served versions and their signatures), `codec` (REST
JSON / TensorProto <-> NumPy), `batching` (dynamic batching, bounded queue),
`server` (`ModelServer`), `rest` (Starlette app, demo page), `grpc_service`
(PredictionService / ModelService), `metrics` (Prometheus), `client` (`Client`),
`deploy` (checks of the deployment files under `serving/`).
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
