/** Text comparison whose failure shows the differing lines, not two walls of text. */
import assert from 'node:assert/strict';

export function assertSameLines(actual: string, expected: string, what: string): void {
  if (actual === expected) return;
  const a = actual.split('\n');
  const e = expected.split('\n');
  const onlyActual = a.filter((line) => !e.includes(line)).slice(0, 15);
  const onlyExpected = e.filter((line) => !a.includes(line)).slice(0, 15);
  assert.fail(`${what} differ:\n  only in actual:\n    ${onlyActual.join('\n    ')}\n  only in expected:\n    ${onlyExpected.join('\n    ')}`);
}
