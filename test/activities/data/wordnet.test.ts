import { augmentRecords } from '../../../activities/data/augment';
import { addWordNetSynsets, loadWordNetSynonyms } from '../../../activities/data/wordnet';
import { AugmentOptionsSchema } from '../../../pipelines/stage-types';

describe('addWordNetSynsets', () => {
  it('links single-word lemmas of a synset, dropping markers, multi-word lemmas and license lines', () => {
    const data = [
      '  1 This software and database is being provided to you, the LICENSEE, by',
      '00001740 00 a 01 able 0 005 = 05207437 n 0000 | having the necessary means',
      '00002312 00 a 02 abaxial 0 dorsal 4 002 ;c 06047178 n 0000 | facing away from the axis',
      '00011111 00 s 02 outback(a) 0 Remote 0 000 | far from cities',
      '00022222 00 s 02 ready_to_hand(p) 0 handy 0 000 | easy to reach',
      '',
    ].join('\n');
    const map = new Map<string, Set<string>>();
    addWordNetSynsets(data, map);
    expect(Object.fromEntries([...map].map(([word, set]) => [word, [...set]]))).toEqual({
      abaxial: ['dorsal'],
      dorsal: ['abaxial'],
      outback: ['remote'],
      remote: ['outback'],
    });
  });
});

describe('loadWordNetSynonyms', () => {
  it('loads WordNet 3.1 synonyms once per process', () => {
    const started = performance.now();
    const wordnet = loadWordNetSynonyms();
    const loadMs = performance.now() - started;
    expect(wordnet.synonyms('car')).toEqual(expect.arrayContaining(['auto', 'automobile', 'machine']));
    expect(wordnet.synonyms('Happy')).toContain('glad');
    expect(wordnet.synonyms('car')).not.toContain('car');
    expect(wordnet.synonyms('qwzx')).toEqual([]);
    expect(loadWordNetSynonyms()).toBe(wordnet);
    expect(loadMs).toBeLessThan(10_000);
  });

  it('drives augmentation of real text', async () => {
    const text = 'Call me Ishmael. Some years ago, having little or no money in my purse, I thought I would sail about a little.';
    const { records } = await augmentRecords([{ id: 'moby', text, label: 'general' }], AugmentOptionsSchema.parse({ factor: 2 }), {
      seed: 7,
      synonyms: loadWordNetSynonyms(),
    });
    expect(records).toHaveLength(3);
    expect(records[1].text).not.toBe(text);
    expect(records[2].text).not.toBe(records[1].text);
    expect(records.every((r) => r.label === 'general')).toBe(true);
  });
});
