import { RE2JS, RE2JSSyntaxException } from 're2js';
import { z } from 'zod';

// Regular expressions written in a spec (collect's `labelFromPath`) run on the worker against
// names the data decides. A backtracking engine (JavaScript's RegExp) takes exponential time on
// patterns such as `(a+)+$`, and while it runs the worker's event loop or compute thread answers
// nothing: no heartbeats, no other stage. RE2 matches in time linear in the input, whatever the
// pattern, and refuses the constructs that need backtracking (backreferences, lookaround).

/** A spec regex, compiled by RE2. */
export type UserRegex = RE2JS;

/** What matched: the whole match, the numbered groups (null where a group took no part) and the named ones. */
export interface UserRegexMatch {
  match: string;
  groups: ReadonlyArray<string | null>;
  named: Readonly<Record<string, string | null>>;
}

/** RE2 refused a spec regex: what is wrong and where (`problem`), and how to fix it (`fix`). */
export class UserRegexError extends Error {
  override readonly name = 'UserRegexError';
  constructor(
    readonly regex: string,
    readonly problem: string,
    readonly fix: string,
  ) {
    super(`${JSON.stringify(regex)} ${problem}; ${fix}`);
  }
}

/** Why RE2 refuses `regex` (the character where the problem starts, and the fix), or undefined when it compiles. */
export function userRegexProblem(regex: string): string | undefined {
  try {
    compileUserRegex(regex);
    return undefined;
  } catch (error) {
    return (error as UserRegexError).message;
  }
}

/** A spec field holding a regex: refused at validation unless RE2 compiles it. */
export const UserRegexSchema = z.string().superRefine((regex, ctx) => {
  const problem = userRegexProblem(regex);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

/** Compiles a spec regex with RE2; throws a UserRegexError saying what is wrong, where, and how to fix it. */
export function compileUserRegex(regex: string): UserRegex {
  try {
    return RE2JS.compile(regex);
  } catch (error) {
    throw syntaxError(regex, error);
  }
}

/** The leftmost match of `pattern` anywhere in `text` (like RegExp.prototype.exec without flags), or undefined. */
export function matchUserRegex(pattern: UserRegex, text: string): UserRegexMatch | undefined {
  const matcher = pattern.matcher(text);
  if (!matcher.find()) return undefined;
  const groups: Array<string | null> = [];
  for (let i = 1; i <= matcher.groupCount(); i++) groups.push(matcher.group(i));
  const named = Object.fromEntries(Object.keys(pattern.namedGroups()).map((name) => [name, matcher.group(name)]));
  return { match: matcher.group(0) ?? '', groups, named };
}

function syntaxError(regex: string, error: unknown): UserRegexError {
  const fixSyntax =
    'fix the pattern (RE2 syntax: groups (...), named groups (?<label>...), classes [a-z], \\d \\w \\s, repeats * + ? {n,m}); in YAML double-quoted strings backslashes must be doubled';
  if (!(error instanceof RE2JSSyntaxException)) return new UserRegexError(regex, `is not a regular expression RE2 can compile (${(error as Error).message})`, fixSyntax);
  const fragment = error.getPattern();
  const at = fragment ? Math.max(0, regex.indexOf(fragment)) + 1 : regex.length;
  const where = ` at character ${at}${fragment ? ` (${JSON.stringify(fragment)})` : ''}`;
  const unsupported = /\\[1-9]|\(\?[=!]|\(\?<[=!]/.test(regex);
  return new UserRegexError(
    regex,
    `is not a regular expression RE2 can run: ${error.getDescription()}${where}`,
    unsupported
      ? 'backreferences (\\1) and lookaround ((?=, (?!, (?<=, (?<!) are not supported, since patterns must match in linear time; rewrite the pattern without them'
      : fixSyntax,
  );
}
