/**
 * The command line's value parsers (cli/options.ts): what they take and what they refuse, with
 * commander's error for a misused option (exit status 2).
 */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { InvalidArgumentError } from 'commander';
import { seconds } from '../../cli/options.js';

test('seconds takes fractions and 0, and refuses what is not a time', () => {
  assert.equal(seconds('0.05'), 0.05); // --commit-interval 0.05: was refused as "not a number"
  assert.equal(seconds('2'), 2);
  assert.equal(seconds('0'), 0);
  for (const bad of ['-1', 'abc', '', ' ', 'Infinity', '86401']) {
    assert.throws(() => seconds(bad), InvalidArgumentError, `'${bad}'`);
  }
});
