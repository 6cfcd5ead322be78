#!/usr/bin/env python3
"""A bring-your-own trainer for Tempered's `command` stage: a ham/spam mail classifier.

Logistic regression on a bag of words, trained with mini-batch AdaGrad, in the Python standard
library only, so it runs wherever python3 does. It speaks the stage protocol:

- reads the train/validation/test splits Tempered staged into $TEMPERED_INPUTS, found through
  $TEMPERED_INPUTS/manifest.json (so it does not depend on the upstream stage's name);
- prints {"tempered": "progress", ...} lines while training (they become the stage's heartbeat)
  and one {"tempered": "metrics", ...} line at the end (merged into the stage's metrics);
- writes model.json and metrics.json to $TEMPERED_OUTPUTS, which Tempered uploads with their sha256.

Seeded by $TEMPERED_SEED: the same data and seed give the same model, byte for byte.
Run by hand:  TEMPERED_INPUTS=dir-with-manifest TEMPERED_OUTPUTS=out python3 train.py
"""
import argparse
import json
import math
import os
import random
import re
import sys
import time

TOKEN = re.compile(r"[a-z0-9$!][a-z0-9$!'_-]*")


def tempered(kind, **values):
    """One protocol line on stdout, flushed so Tempered sees it now."""
    print(json.dumps({"tempered": kind, **values}), flush=True)


def load_splits(inputs_dir):
    """The train/validation/test records named in the inputs manifest."""
    with open(os.path.join(inputs_dir, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    paths = {}
    for entry in manifest["inputs"]:
        if entry["output"] in ("train", "validation", "test"):
            if entry["output"] in paths:
                sys.exit(f"two upstream stages provide a '{entry['output']}' split; give this stage one split input")
            paths[entry["output"]] = entry["path"]
    missing = {"train", "test"} - paths.keys()
    if missing:
        sys.exit(f"no {sorted(missing)} split among the inputs {[e['output'] for e in manifest['inputs']]}; put a split stage upstream")
    splits = {}
    for name, path in paths.items():
        with open(path, encoding="utf-8") as f:
            splits[name] = [json.loads(line) for line in f if line.strip()]
    splits.setdefault("validation", [])
    return splits


def tokens(text, max_tokens):
    """Distinct lowercase word tokens of a text (presence, not counts), in first-seen order."""
    seen = dict.fromkeys(t for t in TOKEN.findall(text.lower()) if len(t) <= 30)
    return list(seen)[:max_tokens]


def build_vocabulary(records, min_count, max_size, max_tokens):
    """Tokens in at least `min_count` training documents, the most frequent `max_size` of them."""
    counts = {}
    for r in records:
        for t in tokens(r["text"], max_tokens):
            counts[t] = counts.get(t, 0) + 1
    kept = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
    return {t: i for i, t in enumerate(kept[:max_size])}


def featurize(record, vocabulary, positive, max_tokens):
    """(feature indices, value per feature, label 0/1): binary presence, L2-normalized."""
    ids = [vocabulary[t] for t in tokens(record["text"], max_tokens) if t in vocabulary]
    value = 1.0 / math.sqrt(len(ids)) if ids else 0.0
    return ids, value, 1 if record.get("label") == positive else 0


def sigmoid(z):
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def predict(weights, bias, example):
    ids, value, _ = example
    return sigmoid(bias + value * sum(weights[i] for i in ids))


def log_loss(p, y):
    p = min(max(p, 1e-12), 1 - 1e-12)
    return -math.log(p) if y == 1 else -math.log(1 - p)


def evaluate(weights, bias, examples):
    """Mean log loss, accuracy, precision, recall and F1 of the positive class."""
    tp = fp = fn = tn = 0
    loss = 0.0
    for ex in examples:
        p = predict(weights, bias, ex)
        y = ex[2]
        loss += log_loss(p, y)
        guess = 1 if p >= 0.5 else 0
        tp += guess and y
        fp += guess and not y
        fn += (not guess) and y
        tn += (not guess) and (not y)
    n = max(1, len(examples))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"loss": loss / n, "accuracy": (tp + tn) / n, "precision": precision, "recall": recall, "f1": f1,
            "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=0.5, help="AdaGrad learning rate")
    parser.add_argument("--l2", type=float, default=1e-4, help="L2 penalty on the weights")
    parser.add_argument("--min-count", type=int, default=2, help="documents a token must occur in")
    parser.add_argument("--vocab-size", type=int, default=20000)
    parser.add_argument("--max-tokens", type=int, default=2000, help="distinct tokens read per mail")
    parser.add_argument("--positive", default="spam", help="the label the classifier detects")
    parser.add_argument("--log-every", type=int, default=5, help="steps between progress lines")
    args = parser.parse_args()

    inputs_dir = os.environ["TEMPERED_INPUTS"]
    outputs_dir = os.environ["TEMPERED_OUTPUTS"]
    rng = random.Random(int(os.environ.get("TEMPERED_SEED", "0")))

    splits = load_splits(inputs_dir)
    labels = sorted({r.get("label") for r in splits["train"]} - {None})
    if args.positive not in labels or len(labels) != 2:
        sys.exit(f"expected two labels including '{args.positive}' in the training split, found {labels}")
    vocabulary = build_vocabulary(splits["train"], args.min_count, args.vocab_size, args.max_tokens)
    data = {name: [featurize(r, vocabulary, args.positive, args.max_tokens) for r in records] for name, records in splits.items()}
    print(f"{len(data['train'])} train, {len(data['validation'])} validation, {len(data['test'])} test mails; "
          f"{len(vocabulary)} tokens in the vocabulary; labels {labels}, detecting '{args.positive}'")

    weights = [0.0] * len(vocabulary)
    bias = 0.0
    grad_sq = [1e-8] * len(vocabulary)  # AdaGrad accumulators
    bias_grad_sq = 1e-8
    steps_per_epoch = math.ceil(len(data["train"]) / args.batch_size)
    total_steps = args.epochs * steps_per_epoch
    best = None
    step = 0
    started = time.perf_counter()
    window_loss = 0.0
    window_n = 0
    for epoch in range(1, args.epochs + 1):
        order = list(range(len(data["train"])))
        rng.shuffle(order)
        for b in range(steps_per_epoch):
            batch = [data["train"][i] for i in order[b * args.batch_size:(b + 1) * args.batch_size]]
            grads = {}
            bias_grad = 0.0
            for ex in batch:
                ids, value, y = ex
                p = predict(weights, bias, ex)
                window_loss += log_loss(p, y)
                window_n += 1
                err = (p - y) / len(batch)
                bias_grad += err
                for i in ids:
                    grads[i] = grads.get(i, 0.0) + err * value
            for i, g in grads.items():  # L2 applied lazily to the touched weights only
                g += args.l2 * weights[i]
                grad_sq[i] += g * g
                weights[i] -= args.lr * g / math.sqrt(grad_sq[i])
            bias_grad_sq += bias_grad * bias_grad
            bias -= args.lr * bias_grad / math.sqrt(bias_grad_sq)
            step += 1
            if step % args.log_every == 0 or step == total_steps:
                elapsed = max(time.perf_counter() - started, 1e-9)
                tempered("progress", step=step, totalSteps=total_steps, epoch=epoch, loss=round(window_loss / window_n, 5),
                         examplesPerSec=round(min(step * args.batch_size, len(data["train"]) * epoch) / elapsed, 1))
                window_loss = 0.0
                window_n = 0
        held_out = data["validation"] or data["train"]
        val = evaluate(weights, bias, held_out)
        print(f"epoch {epoch}: validation loss {val['loss']:.4f} accuracy {val['accuracy']:.4f} f1 {val['f1']:.4f}")
        if best is None or val["loss"] < best["valLoss"]:
            best = {"epoch": epoch, "valLoss": val["loss"], "valAccuracy": val["accuracy"], "weights": list(weights), "bias": bias}

    weights, bias = best["weights"], best["bias"]
    test = evaluate(weights, bias, data["test"])
    print(f"test (best epoch {best['epoch']}): accuracy {test['accuracy']:.4f} precision {test['precision']:.4f} "
          f"recall {test['recall']:.4f} f1 {test['f1']:.4f}")

    by_index = sorted(vocabulary, key=vocabulary.get)
    model = {
        "type": "logistic-regression",
        "features": {"tokenPattern": TOKEN.pattern, "lowercase": True, "binary": True, "l2Normalized": True,
                     "maxTokens": args.max_tokens},
        "labels": labels,
        "positiveLabel": args.positive,
        "bias": round(bias, 6),
        # weight per token; a mail scores sigmoid(bias + sum(weights of its tokens) / sqrt(#tokens in vocabulary))
        "weights": {t: round(weights[i], 6) for i, t in enumerate(by_index) if weights[i] != 0.0},
        "training": {"epochs": args.epochs, "bestEpoch": best["epoch"], "batchSize": args.batch_size, "lr": args.lr,
                     "l2": args.l2, "seed": int(os.environ.get("TEMPERED_SEED", "0")), "trainExamples": len(data["train"])},
    }
    with open(os.path.join(outputs_dir, "model.json"), "w", encoding="utf-8") as f:
        json.dump(model, f, indent=1, sort_keys=True)
        f.write("\n")

    metrics = {
        "accuracy": round(test["accuracy"], 6),
        "precision": round(test["precision"], 6),
        "recall": round(test["recall"], 6),
        "f1": round(test["f1"], 6),
        "testLoss": round(test["loss"], 6),
        "valLoss": round(best["valLoss"], 6),
        "bestEpoch": best["epoch"],
        "vocabSize": len(vocabulary),
        "trainExamples": len(data["train"]),
        "testExamples": len(data["test"]),
    }
    with open(os.path.join(outputs_dir, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump({**metrics, "confusion": test["confusion"]}, f, indent=2, sort_keys=True)
        f.write("\n")
    tempered("metrics", **metrics)


if __name__ == "__main__":
    main()
