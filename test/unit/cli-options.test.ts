/**
 * The command line's value parsers (cli/options.ts): what they take and what they refuse, with
 * commander's error for a misused option (exit status 2).
 */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { InvalidArgumentError } from 'commander';
import { positiveSeconds, seconds } from '../../cli/options.js';

test('seconds takes fractions and 0, and refuses what is not a time', () => {
  assert.equal(seconds('0.05'), 0.05); // --commit-interval 0.05: was refused as "not a number"
  assert.equal(seconds('2'), 2);
  assert.equal(seconds('0'), 0);
  for (const bad of ['-1', 'abc', '', ' ', 'Infinity', '86401']) {
    assert.throws(() => seconds(bad), InvalidArgumentError, `'${bad}'`);
  }
});

test('positiveSeconds takes fractions and refuses 0 and what is not a time', () => {
  assert.equal(positiveSeconds('0.5'), 0.5);
  assert.equal(positiveSeconds('86400'), 86_400);
  for (const bad of ['0', '-1', 'abc', '', ' ', 'Infinity', '86401']) {
    assert.throws(() => positiveSeconds(bad), InvalidArgumentError, `'${bad}'`);
  }
});
