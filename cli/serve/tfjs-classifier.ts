import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../activities/ml/backend';
import { disposeBatch, makeBatch } from '../../activities/ml/batches';
import type { ArtifactStore } from '../../activities/store';
import { loadModelArtifacts } from '../../activities/training/model-artifacts';
import type { ArtifactRef } from '../../workflows/types';
import { argmaxLabel, ServeError, type Classifier, type Prediction } from './engine';

// A tfjs classifier in this process, scored as the evaluate stage scores it: the first `context`
// tokens of each text after <bos>, LoRA merged, the class head's softmax.

/** Texts per forward pass: a bigger request is scored in slices of this size. */
const BATCH = 32;

export async function loadTfjsClassifier(store: ArtifactStore, outputs: Record<string, ArtifactRef>, name: string): Promise<Classifier> {
  const info = await initBackend('auto');
  const model = await loadModelArtifacts(store, outputs, { name, merge: true });
  const labels = model.labels;
  if (model.descriptor.objective !== 'classify' || !labels) {
    model.gpt.dispose();
    throw new ServeError(`this tfjs model is a ${model.descriptor.objective} model, not a classifier`);
  }
  const { gpt, tokenizer } = model;
  return {
    kind: 'classifier',
    engine: `tfjs (${info.name})`,
    labels,
    async classify(texts: string[]): Promise<Prediction[]> {
      const predictions: Prediction[] = [];
      for (let start = 0; start < texts.length; start += BATCH) {
        const examples = texts.slice(start, start + BATCH).map((text) => ({ tokens: [tokenizer.bosId, ...tokenizer.encode(text)].slice(0, gpt.config.context), label: 0 }));
        const batch = makeBatch('classify', examples, gpt.config);
        if (batch.kind !== 'classify') throw new Error('expected a classify batch');
        try {
          const probabilities = tf.tidy(() => tf.softmax(gpt.forwardClassify(batch.inputs, batch.lengths)).arraySync() as number[][]);
          for (const p of probabilities) predictions.push({ label: argmaxLabel(labels, p), scores: Object.fromEntries(labels.map((l, i) => [l, p[i]])) });
        } finally {
          disposeBatch(batch);
        }
      }
      return predictions;
    },
    async dispose() {
      gpt.dispose();
    },
  };
}
