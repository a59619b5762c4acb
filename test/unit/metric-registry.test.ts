/**
 * Our Prometheus registry (transport/metric-registry.ts) writes what prom-client wrote before it
 * replaced it: the same blocks, label order, cumulative buckets and escapes, so dashboards and
 * scrapers see no change.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Counter, Gauge, Histogram, exposition } from '../../transport/metric-registry.js';

/** The block of one metric in the exposition, as lines. */
function block(name: string): string[] {
  const text = exposition();
  const start = text.indexOf(`# HELP ${name} `);
  assert.ok(start >= 0, `${name} is exposed`);
  const end = text.indexOf('\n\n', start);
  return text.slice(start, end < 0 ? undefined : end).trimEnd().split('\n');
}

describe('metric registry', () => {
  it('shows a counter without labels as 0 from the start, and one with labels once counted, in label-name order', () => {
    const plain = new Counter({ name: 'test_plain_total', help: 'Plain' });
    const labelled = new Counter({ name: 'test_labelled_total', help: 'By op', labelNames: ['op', 'errno'] });
    assert.deepEqual(block('test_labelled_total'), ['# HELP test_labelled_total By op', '# TYPE test_labelled_total counter']);
    plain.inc();
    plain.inc({}, 2);
    labelled.inc({ errno: 'OK', op: 'fs.read' });
    labelled.inc({ op: 'fs.read', errno: 'OK' }, 4);
    assert.deepEqual(block('test_plain_total'), ['# HELP test_plain_total Plain', '# TYPE test_plain_total counter', 'test_plain_total 3']);
    assert.deepEqual(block('test_labelled_total').slice(2), ['test_labelled_total{op="fs.read",errno="OK"} 5']);
    assert.deepEqual(labelled.samples(), [{ labels: { op: 'fs.read', errno: 'OK' }, value: 5 }]);
  });

  it('sets a gauge from its collect callback when read', () => {
    let now = 7;
    const gauge = new Gauge({ name: 'test_open', help: 'Open', labelNames: ['kind'], collect: (g) => g.set({ kind: 'file' }, now) });
    assert.deepEqual(block('test_open').slice(2), ['test_open{kind="file"} 7']);
    now = 2;
    assert.equal(gauge.samples()[0]?.value, 2);
    const inFlight = new Gauge({ name: 'test_in_flight', help: 'In flight' });
    inFlight.inc();
    inFlight.inc();
    inFlight.dec();
    assert.deepEqual(block('test_in_flight').slice(2), ['test_in_flight 1']);
  });

  it('shows a histogram as cumulative buckets with le first, +Inf, sum and count', () => {
    const h = new Histogram({ name: 'test_seconds', help: 'Time', labelNames: ['op'], buckets: [0.5, 0.001, 0.01] });
    h.observe({ op: 'a' }, 0.0005);
    h.observe({ op: 'a' }, 0.005);
    h.observe({ op: 'a' }, 2);
    assert.deepEqual(block('test_seconds').slice(2), [
      'test_seconds_bucket{le="0.001",op="a"} 1',
      'test_seconds_bucket{le="0.01",op="a"} 2',
      'test_seconds_bucket{le="0.5",op="a"} 2',
      'test_seconds_bucket{le="+Inf",op="a"} 3',
      'test_seconds_sum{op="a"} 2.0055',
      'test_seconds_count{op="a"} 3',
    ]);
  });

  it('escapes help and label values as the text format asks, and refuses a second metric of one name', () => {
    const c = new Counter({ name: 'test_escaped_total', help: 'a \\ b\nc', labelNames: ['path'] });
    c.inc({ path: 'x"y\\z\nw' });
    assert.deepEqual(block('test_escaped_total'), [
      '# HELP test_escaped_total a \\\\ b\\nc', '# TYPE test_escaped_total counter', 'test_escaped_total{path="x\\"y\\\\z\\nw"} 1',
    ]);
    assert.throws(() => new Counter({ name: 'test_escaped_total', help: 'again' }), /registered already/);
    assert.ok(exposition().endsWith('\n') && !exposition().endsWith('\n\n'));
  });
});
