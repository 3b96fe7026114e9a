"""Example TF Serving gRPC client for an sg3keras export (not run by the tests).

Needs ``pip install tensorflow-serving-api grpcio`` (which pulls in the full ``tensorflow``
wheel) and a running server (see README.md). Writes ``seedNNNN.png`` per seed.

    python savedmodels/grpc_client.py --host localhost:8500 --model stylegan3-t \\
        --seeds 0,1,42 --trunc 0.7
"""

import argparse

import grpc
import numpy as np
import tensorflow as tf
from PIL import Image
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="localhost:8500")
    ap.add_argument("--model", default="stylegan3-t")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--trunc", type=float, default=1.0)
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]

    request = predict_pb2.PredictRequest()
    request.model_spec.name = args.model
    request.model_spec.signature_name = "generate_from_seeds"
    request.inputs["seeds"].CopyFrom(tf.make_tensor_proto(np.array(seeds, np.int64)))
    request.inputs["truncation_psi"].CopyFrom(tf.make_tensor_proto(np.float32(args.trunc)))
    # Conditional networks also need: request.inputs["c"] (float32 [N, c_dim], one-hot).
    # Latents instead of seeds: signature_name "serving_default" with inputs "z" [N, z_dim] and
    # "truncation_psi"; per-sample translate/rotate: "generate_transformed".

    with grpc.insecure_channel(args.host) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(request, args.timeout)
    images = tf.make_ndarray(response.outputs["images"])        # uint8 [N, H, W, C]
    for seed, img in zip(seeds, images):
        Image.fromarray(img[:, :, 0] if img.shape[2] == 1 else img).save(f"seed{seed:04d}.png")
        print(f"seed{seed:04d}.png", img.shape)


if __name__ == "__main__":
    main()
