/**
 * The building blocks of the protocol's schemas (ops.ts, changes.ts, caller.ts, codec.ts), and
 * how a schema's verdict becomes a message. Schemas are valibot's: plain objects, checked by
 * functions the whole library shares. An idle agent is mostly Node and its libraries, and zod,
 * which the protocol used before, cost it 8 MiB resident (its classes and their code, loaded and
 * compiled at start) where valibot costs 1 MiB (docs/performance.md, the agent's memory).
 *
 * Numbers are checked as the wire may bring them: msgpack carries floats, so an integer field
 * refuses 1.5, NaN and infinities, and every number refuses NaN and infinities.
 */
import * as v from 'valibot';

/** A finite number. */
export const finite = v.pipe(v.number(), v.finite());
/** An integer JavaScript holds exactly. */
export const int = v.pipe(v.number(), v.safeInteger());
/** An integer from `min` to `max`. */
export const intIn = (min: number, max: number) => v.pipe(v.number(), v.safeInteger(), v.minValue(min), v.maxValue(max));
export const u16 = intIn(0, 0xffff);
export const u32 = intIn(0, 0xffffffff);
export const u53 = intIn(0, Number.MAX_SAFE_INTEGER);
/**
 * A msgpack map, before `v.object` or `v.record` reads it where either may have no key at all:
 * they take any object, an array too (an empty map's schema would take `[[[]]]`).
 */
export const map = v.custom<object>((value) => typeof value === 'object' && value !== null && !Array.isArray(value), 'expected a map');
/** Raw bytes (msgpack bin). */
export const bytes = v.custom<Uint8Array>((value) => value instanceof Uint8Array, 'expected raw bytes');

/** Issues a schema error names; the rest are counted. Every element of a 65,536-long array may
 * have one, and an error reply listing them all would not fit in a message (none was sent). */
const MAX_ISSUES = 8;

/** What is wrong with a message, as one line: where (a dotted path) and what, for each issue. */
function describe(issues: readonly v.BaseIssue<unknown>[]): string {
  const shown = issues.slice(0, MAX_ISSUES).map((issue) => `${v.getDotPath(issue) ?? '(root)'}: ${issue.message}`);
  const more = issues.length - shown.length;
  return `${shown.join('; ')}${more > 0 ? `; and ${more} more` : ''}`;
}

export type Checked<T> = { ok: true; value: T } | { ok: false; problem: string };

/** `value` checked against `schema`: what the schema makes of it, or what is wrong with it. */
export function check<S extends v.GenericSchema>(schema: S, value: unknown): Checked<v.InferOutput<S>> {
  const result = v.safeParse(schema, value, { abortPipeEarly: true });
  return result.success ? { ok: true, value: result.output } : { ok: false, problem: describe(result.issues) };
}
