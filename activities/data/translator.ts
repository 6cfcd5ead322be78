import { UnknownTranslatorError } from './errors';

/** A machine-translation service, registered with the worker by name. */
export interface Translator {
  /** Translates each text from language `from` to `to`; returns one output per input, in order. */
  translate(texts: string[], from: string, to: string): Promise<string[]>;
}

/** Returns texts unchanged: makes back-translation testable without a translation service. */
export const identityTranslator: Translator = {
  translate: async (texts) => [...texts],
};

/** The built-in translators, always registered. */
export const BUILT_IN_TRANSLATORS: Readonly<Record<string, Translator>> = { identity: identityTranslator };

/** Looks a translator up among the built-ins and `registered`; UnknownTranslatorError lists the names. */
export function resolveTranslator(name: string, registered: Readonly<Record<string, Translator>> = {}): Translator {
  const all = { ...BUILT_IN_TRANSLATORS, ...registered };
  if (!Object.prototype.hasOwnProperty.call(all, name)) {
    throw new UnknownTranslatorError(name, Object.keys(all).sort());
  }
  return all[name];
}
