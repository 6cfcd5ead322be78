import { RequestError } from '../../cli/serve/engine';
import { parse, REQUEST_SCHEMAS } from '../../cli/serve/http';

// What `tempered serve` takes in a request body, as OpenAI's clients send it.

test("null is unset, as OpenAI's SDKs send every field left None", () => {
  const request = parse(REQUEST_SCHEMAS.chatRequest, { model: null, messages: [{ role: 'user', content: 'hi' }], max_tokens: null, temperature: null, stop: null, stream: null, n: null });
  expect(request).toMatchObject({ messages: [{ role: 'user', content: 'hi' }] });
  expect([request.model, request.max_tokens, request.temperature, request.stop, request.stream, request.n]).toEqual([undefined, undefined, undefined, undefined, undefined, undefined]);
});

test('every wrong field is named at once, with where it is', () => {
  const failed = (() => {
    try {
      parse(REQUEST_SCHEMAS.completionRequest, { prompt: ['a', 'b'], temperature: 3, n: 2 });
    } catch (err) {
      return err;
    }
  })() as RequestError;
  expect(failed).toBeInstanceOf(RequestError);
  expect(failed.status).toBe(400);
  expect(failed.message).toMatch(/prompt: .*one prompt per request/);
  expect(failed.message).toMatch(/temperature: /);
  expect(failed.message).toMatch(/n: only n = 1 is served/);
  expect(failed.param).toBe('temperature');
  expect(() => parse(REQUEST_SCHEMAS.completionRequest, { prompt: 7 })).toThrow(/prompt: a string, or a list holding one string/);
});
