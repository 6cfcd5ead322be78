import { widenHead } from '../../../activities/training/stages';

const tensor = (shape: number[], values: number[]) => ({ shape, data: Float32Array.from(values) });

test('a head widened for a new class keeps the trained columns of the old classes and the fresh one of the new', () => {
  const from = {
    'block0.w': tensor([2], [1, 2]),
    'cls.weight': tensor([2, 2], [10, 11, 20, 21]), // rows: input features, columns: classes
    'cls.bias': tensor([2], [0.5, -0.5]),
  };
  const fresh = {
    'block0.w': tensor([2], [0, 0]),
    'cls.weight': tensor([2, 3], [7, 7, 7, 8, 8, 8]),
    'cls.bias': tensor([3], [9, 9, 9]),
  };
  const widened = widenHead(from, fresh);
  expect(Array.from(widened['block0.w'].data)).toEqual([1, 2]);
  expect(widened['cls.weight'].shape).toEqual([2, 3]);
  expect(Array.from(widened['cls.weight'].data)).toEqual([10, 11, 7, 20, 21, 8]);
  expect(Array.from(widened['cls.bias'].data)).toEqual([0.5, -0.5, 9]);
  expect(Array.from(fresh['cls.weight'].data)).toEqual([7, 7, 7, 8, 8, 8]); // inputs untouched
});

test("a language model's body carries over and its missing head stays as initialised", () => {
  const widened = widenHead({ 'block0.w': tensor([1], [3]) }, { 'block0.w': tensor([1], [0]), 'cls.weight': tensor([1, 2], [4, 5]) });
  expect(Object.keys(widened)).toEqual(['block0.w']);
});
