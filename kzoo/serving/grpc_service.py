"""gRPC `tensorflow.serving.PredictionService` (Predict, GetModelMetadata) and
`tensorflow.serving.ModelService` (GetModelStatus) on grpc.aio, with the official
protos of the `tensorflow-serving-api` package.

Requests arrive as bytes and are parsed here, so that a message that is not a
valid protobuf gets INVALID_ARGUMENT (not grpc's generic INTERNAL). Unknown
models and versions get NOT_FOUND, an unknown `version_label` INVALID_ARGUMENT,
a full queue RESOURCE_EXHAUSTED, exactly the codes TF Serving answers with.
Messages may be as large as the server's `grpc_max_message_bytes` (TF Serving:
2 GiB - 1, in and out); each input's declared shape is checked against the
signature and the request's memory budget before it is decoded; a request over
its memory budget or a response over the response limit gets RESOURCE_EXHAUSTED
(`Servable.plan`). grpc.aio cancels a call's task when its client cancels or its
deadline passes; the request is then dropped or stopped at its next chunk or tile.
"""

from __future__ import annotations

import asyncio
import time

import grpc
from google.protobuf import json_format
from google.protobuf.message import DecodeError

from kzoo.serving import codec
from kzoo.serving.errors import ServingError, as_serving_error

METADATA_FIELD = "signature_def"


def _protos():
    from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2, model_service_pb2,
                                         predict_pb2, prediction_service_pb2)

    return get_model_metadata_pb2, get_model_status_pb2, model_service_pb2, predict_pb2, prediction_service_pb2


class Service:
    """The servicer methods, each `async fn(request_bytes, context) -> response message`."""

    def __init__(self, server):
        self.server = server
        (self.metadata_pb2, self.status_pb2, self.model_service_pb2, self.predict_pb2,
         self.prediction_service_pb2) = _protos()

    async def _call(self, request_class, raw, context, handler, method):
        started, name, status = time.perf_counter(), None, "OK"
        try:
            try:
                request = request_class.FromString(raw)
            except (DecodeError, RuntimeWarning, ValueError) as err:
                raise ServingError(f"cannot parse {request_class.DESCRIPTOR.name}: {err}") from None
            name = request.model_spec.name
            return await handler(request)
        except asyncio.CancelledError:  # the client cancelled, or its deadline passed
            status = "CANCELLED"
            raise
        except Exception as err:
            err = as_serving_error(err)
            status = err.code
            await context.abort(getattr(grpc.StatusCode, err.code), str(err))
        finally:
            self.server.observe(name, "grpc", status, started, method)

    @staticmethod
    def _version(spec):
        """(version, label) of a ModelSpec (its `version_choice` oneof)."""
        which = spec.WhichOneof("version_choice")
        if which == "version":
            return spec.version.value, None
        if which == "version_label":
            return None, spec.version_label
        return None, None

    async def predict(self, raw, context):
        async def handle(request):
            if not request.model_spec.name:
                raise ServingError("model_spec.name is empty")

            def decode(servable):
                _, sig = servable.signature(request.model_spec.signature_name)
                entries = {e["name"]: e for e in sig["inputs"]}
                budget = codec.Budget(self.server.max_tensor_bytes)
                return request.model_spec.signature_name, {
                    k: codec.from_tensor_proto(v, f"input {k}", entries.get(k), budget)
                    for k, v in request.inputs.items()}

            def encode(servable, signature, outputs):
                response = self.predict_pb2.PredictResponse()
                response.model_spec.name = servable.name
                response.model_spec.version.value = servable.version
                response.model_spec.signature_name = signature
                for k, v in outputs.items():
                    response.outputs[k].CopyFrom(codec.tensor_proto(v))
                return response

            version, label = self._version(request.model_spec)
            _, _, response = await self.server.predict(
                request.model_spec.name, version, decode, request.output_filter, label=label,
                encode=encode, encoding="proto")
            return response

        return await self._call(self.predict_pb2.PredictRequest, raw, context, handle, "Predict")

    async def get_model_metadata(self, raw, context):
        async def handle(request):
            fields = list(request.metadata_field)
            if fields != [METADATA_FIELD]:
                raise ServingError(f"metadata_field must be [\"{METADATA_FIELD}\"], got {fields}")
            from tensorflow_serving.apis import get_model_metadata_pb2

            servable = self.server.repo.get(request.model_spec.name, *self._version(request.model_spec))
            sig_map = json_format.ParseDict(codec.signature_def_map(servable.signatures),
                                            get_model_metadata_pb2.SignatureDefMap())
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = servable.name
            response.model_spec.version.value = servable.version
            response.metadata[METADATA_FIELD].Pack(sig_map)
            return response

        return await self._call(self.metadata_pb2.GetModelMetadataRequest, raw, context, handle,
                                "GetModelMetadata")

    async def get_model_status(self, raw, context):
        async def handle(request):
            rows = self.server.repo.status(request.model_spec.name, *self._version(request.model_spec))
            response = self.status_pb2.GetModelStatusResponse()
            for row in rows:
                s = response.model_version_status.add(version=int(row["version"]))
                s.state = getattr(self.status_pb2.ModelVersionStatus.State, row["state"])
                s.status.error_code = 0 if row["status"]["error_code"] == "OK" else 2
                s.status.error_message = row["status"]["error_message"]
            return response

        return await self._call(self.status_pb2.GetModelStatusRequest, raw, context, handle, "GetModelStatus")

    def handlers(self):
        def unary(fn):
            return grpc.unary_unary_rpc_method_handler(fn, request_deserializer=None,
                                                       response_serializer=lambda m: m.SerializeToString())

        prediction = self.prediction_service_pb2.DESCRIPTOR.services_by_name["PredictionService"].full_name
        model = self.model_service_pb2.DESCRIPTOR.services_by_name["ModelService"].full_name
        return [grpc.method_handlers_generic_handler(prediction, {
                    "Predict": unary(self.predict), "GetModelMetadata": unary(self.get_model_metadata)}),
                grpc.method_handlers_generic_handler(model, {"GetModelStatus": unary(self.get_model_status)})]


async def start_grpc(server, host, port):
    """Start the gRPC server on `host:port` (0: any free port); returns (grpc server, port)."""
    from kzoo.errors import KzooError

    limit = server.grpc_max_message_bytes
    grpc_server = grpc.aio.server(options=[("grpc.max_receive_message_length", limit),
                                           ("grpc.max_send_message_length", limit),
                                           ("grpc.so_reuseport", 0)])
    grpc_server.add_generic_rpc_handlers(Service(server).handlers())
    try:
        bound = grpc_server.add_insecure_port(f"{host}:{port}")
    except RuntimeError as err:
        raise KzooError(f"cannot listen for gRPC on {host}:{port}: {err}") from None
    if not bound:
        raise KzooError(f"cannot listen for gRPC on {host}:{port} (port in use?)")
    await grpc_server.start()
    return grpc_server, bound
