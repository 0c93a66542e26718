"""Test vectors both sides read: packets, feedback, handshake messages and an RVQ case, as bytes;
the rate controller's plans for a sequence of reports, and the packetizer's packets (rate_vectors.py).

The Python protocol writes them (`python -m tests.web.vectors` rewrites web/test/vectors.json);
tests/web/test_vectors.py checks that the file is what the Python code writes now, and
web/test/*.test.js (`node --test web/test/`) that the page's protocol reads and writes the
same bytes. A protocol change that one side misses fails one of the two.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from protocol.feedback import decode_feedback, encode_feedback
from protocol.messages import Accept, Answer, Bye, EndOfStream, Feedback, Hello, Offer, Reject, Start, dump_message
from protocol.packets import Frame, MediaPacket, RedundantFrame, encode_packet
from tests.web.rate_vectors import SCENARIOS, packetizer_case, rate_scenario

PATH = Path(__file__).resolve().parents[2] / "web" / "test" / "vectors.json"
BITS, MAX_LAYERS = 4, 80  # the default model's codes: 4 bits, 80 stages
MODEL_ID = "soundstream16k-lyra2x-c95c1ead19"


def _codes(rng: np.random.Generator, layers: int) -> np.ndarray:
    return rng.integers(0, 1 << BITS, layers)


def _packets() -> list[dict]:
    rng = np.random.default_rng(22)
    cases = [
        MediaPacket(seq=0, timestamp=0, frames=(Frame(_codes(rng, 30)),), talkspurt=True),
        MediaPacket(seq=65535, timestamp=2**32 - 320, frames=(Frame(_codes(rng, 1)),), quiet=True),
        MediaPacket(seq=7, timestamp=2240, frames=tuple(Frame(_codes(rng, n)) for n in (12, 13, 80)), denoise=True),
        MediaPacket(
            seq=300,
            timestamp=96000,
            frames=(Frame(_codes(rng, 24)), Frame(_codes(rng, 24))),
            redundancy=(RedundantFrame(1, Frame(_codes(rng, 4))), RedundantFrame(4, Frame(_codes(rng, 3)))),
        ),
    ]
    return [
        {
            "hex": encode_packet(p, BITS).hex(),
            "seq": p.seq,
            "timestamp": p.timestamp,
            "denoise": p.denoise,
            "talkspurt": p.talkspurt,
            "quiet": p.quiet,
            "frames": [f.codes.tolist() for f in p.frames],
            "redundancy": [{"back": r.back, "codes": r.frame.codes.tolist()} for r in p.redundancy],
        }
        for p in cases
    ]


def _malformed() -> list[str]:
    """Packets both parsers refuse (the reason is each side's own)."""
    good = bytes.fromhex(_packets()[0]["hex"])
    cases = [
        b"",
        good[:7],  # truncated header
        bytes([0x20]) + good[1:],  # version 2
        good[:-1],  # truncated payload
        good + b"\x00",  # a trailing byte
        good[:7] + bytes([0]) + good[8:],  # no frames
        good[:7] + bytes([7]) + good[8:],  # 7 frames
        good[:8] + bytes([81]) + good[9:],  # more layers than the model has
        bytes([0x12]) + good[1:],  # a redundancy flag with no block
        b"\x10" + b"\x00" * 1100,  # over 1100 bytes
    ]
    return [case.hex() for case in cases]


def _feedback() -> list[dict]:
    reports = [
        Feedback(
            highest_seq=65537,
            received=1234,
            loss_fraction=0.1,
            jitter_ms=3.25,
            hold_ms=12.4,
            buffer_ms=60,
            concealed_fraction=0.02,
            received_bytes=98765,
            recovered=3,
            queue_delay_ms=25.5,
        ),
        Feedback(highest_seq=0, received=1, loss_fraction=0.0, jitter_ms=0.0, buffer_ms=0.0, concealed_fraction=0.0),
        Feedback(
            highest_seq=2**32 - 1,
            received=2**32 - 1,
            loss_fraction=1.0,
            jitter_ms=60_000,
            hold_ms=60_000,
            buffer_ms=60_000,
            concealed_fraction=1.0,
            queue_delay_ms=60_000,
        ),
    ]
    out = []
    for fb in reports:
        data = encode_feedback(fb)
        out.append({"hex": data.hex(), "given": fb.model_dump(exclude={"type"}), "decoded": decode_feedback(data).model_dump(exclude={"type"})})
    return out


def _messages() -> dict[str, str]:
    """Control messages as the Python side writes them, and the page's hello as the page writes it."""
    return {
        "hello": dump_message(
            Hello(
                protocol_version=1,
                model_id=MODEL_ID,
                sample_rate=16000,
                frame_ms=20.0,
                max_layers=MAX_LAYERS,
                bits_per_stage=BITS,
                token="s3cret",
                media="webrtc",
            )
        ),
        "page_hello": '{"type":"hello","protocol_version":1,"model_id":"soundstream16k-lyra2x-c95c1ead19","sample_rate":16000,"frame_ms":20,'
        '"max_layers":80,"bits_per_stage":4,"token":"s3cret","media":"webrtc"}',
        "accept": dump_message(Accept(protocol_version=1, model_id=MODEL_ID, max_layers=MAX_LAYERS, bits_per_stage=BITS)),
        "reject": dump_message(Reject(reason="wrong token")),
        "offer": dump_message(Offer(sdp="v=0\r\n")),
        "answer": dump_message(Answer(sdp="v=0\r\n")),
        "empty_answer": dump_message(Answer()),
        "start": dump_message(Start(capture_epoch=1700000000.25)),
        "eos": dump_message(EndOfStream()),
        "bye": dump_message(Bye(reason="hang-up")),
    }


def _rvq() -> dict:
    """A small residual VQ case: codebooks [stages * size, dim], a latent, its codes and their sum."""
    rng = np.random.default_rng(5)
    stages, size, dim = 4, 8, 6
    table = (rng.standard_normal((stages * size, dim)) * np.array([1.0, 0.5, 0.25, 0.125]).repeat(size)[:, None]).astype(np.float32)
    latent = rng.standard_normal(dim).astype(np.float32)
    residual = latent.copy()
    codes = []
    for k in range(stages):  # as OnnxStreamingEncoder without its cross-product table
        books = table[k * size : (k + 1) * size]
        i = int(np.argmax(books @ residual - 0.5 * np.sum(books * books, axis=1)))
        codes.append(i)
        residual -= books[i]
    decoded = sum(table[k * size + c] for k, c in enumerate(codes))
    return {"stages": stages, "size": size, "dim": dim, "table": table.tolist(), "latent": latent.tolist(), "codes": codes, "decoded": decoded.tolist()}


def _predictor() -> dict:
    """A small latent predictor packed as the listener serves it (`pack_predictor`), and the
    next-frame latents its NumPy step (the Python receiver's) gives for a run of frames, some of
    them fed back predictions."""
    import torch

    from codec.concealment import LatentPredictor, PredictorConfig, StreamingPredictor
    from codec.web_export import pack_predictor

    torch.manual_seed(3)
    model = LatentPredictor(PredictorConfig(latent_dim=5, hidden=7))
    with torch.no_grad():  # a trained-looking head and statistics, not the zero init
        model.head.weight.normal_(0, 0.3)
        model.head.bias.normal_(0, 0.1)
        model.mean.normal_(0, 1)
        model.scale.uniform_(0.5, 2)
    step = StreamingPredictor(model)
    weights = np.frombuffer(pack_predictor(step), "<f4")
    rng = np.random.default_rng(9)
    steps = []
    for predicted in (False, False, True, True, False, True, False):
        latent = rng.standard_normal(5).astype(np.float32)
        steps.append({"latent": latent.tolist(), "predicted": predicted, "next": step.step(latent, predicted).tolist()})
    return {"dim": 5, "hidden": 7, "weights": weights.tolist(), "steps": steps}


def _refined_predictor() -> dict:
    """A small predictor with a guess refiner (`codec.concealment.GuessRefiner`), packed as the
    listener serves it, and what its NumPy `refine` (the Python receiver's) makes of guesses
    given no later frame, a later one within reach, and one beyond it, between steps."""
    import torch

    from codec.concealment import LatentPredictor, PredictorConfig, StreamingPredictor
    from codec.web_export import pack_predictor

    torch.manual_seed(4)
    model = LatentPredictor(PredictorConfig(latent_dim=5, hidden=7, refiner=6, reach=3))
    assert model.refiner is not None
    with torch.no_grad():  # trained-looking, not the zero init
        model.head.weight.normal_(0, 0.3)
        model.refiner.out.weight.normal_(0, 0.5)
        model.refiner.out.bias.normal_(0, 0.1)
        model.mean.normal_(0, 1)
        model.scale.uniform_(0.5, 2)
    step = StreamingPredictor(model)
    weights = np.frombuffer(pack_predictor(step), "<f4")
    rng = np.random.default_rng(10)
    cases = []
    for distance in (0, 1, 2, 3, 5):
        latent = rng.standard_normal(5).astype(np.float32)
        guess = step.step(latent, False)
        later = rng.standard_normal(5).astype(np.float32)
        refined = step.refine(guess, later if distance else None, distance)
        given = later.tolist() if distance else None
        cases.append({"latent": latent.tolist(), "guess": guess.tolist(), "later": given, "distance": distance, "refined": refined.tolist()})
    return {"dim": 5, "hidden": 7, "refiner": 6, "reach": 3, "weights": weights.tolist(), "cases": cases}


def vectors() -> dict:
    return {
        "bits": BITS,
        "max_layers": MAX_LAYERS,
        "packets": _packets(),
        "malformed": _malformed(),
        "feedback": _feedback(),
        "messages": _messages(),
        "rvq": _rvq(),
        "predictor": _predictor(),
        "refined_predictor": _refined_predictor(),
        "rate_control": [rate_scenario(s, BITS) for s in SCENARIOS],
        "packetizer": packetizer_case(BITS),
    }


def _dump(value: object, indent: str = "") -> str:
    """JSON, indented, with a list of numbers (a rate-control step, a frame's codes) on one line."""
    inner = indent + " "
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(k)}: {_dump(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}" if items else "{}"
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        return "[\n" + ",\n".join(inner + _dump(v, inner) for v in value) + "\n" + indent + "]"
    return json.dumps(value)


def write(path: Path = PATH) -> None:
    path.write_text(_dump(vectors()) + "\n")


if __name__ == "__main__":
    write()
    print(f"wrote {PATH}")
