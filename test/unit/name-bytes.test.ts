import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SlaveError, hasLoneSurrogates, nameAsUnicode, nameFromBytes, nameToBytes } from '../../protocol/index.js';

const bytes = (...b: number[]) => Uint8Array.from(b);

describe('file names as bytes (surrogateescape)', () => {
  it('decodes UTF-8 as usual, a leading BOM and astral characters included', () => {
    for (const name of ['plain', 'é', '日本語', '🙂x', '\uFEFFbom', '']) {
      assert.equal(nameFromBytes(Buffer.from(name, 'utf8')), name);
      assert.deepEqual(nameToBytes(name), Buffer.from(name, 'utf8'));
    }
  });

  it('escapes each byte that is not UTF-8 as U+DC00 + byte, as Python does', () => {
    assert.equal(nameFromBytes(bytes(0xff)), '\udcff');
    assert.equal(nameFromBytes(bytes(0x61, 0xff, 0x62)), 'a\udcffb');
    assert.equal(nameFromBytes(bytes(0xe2, 0x82)), '\udce2\udc82'); // truncated sequence
    assert.equal(nameFromBytes(bytes(0xe2, 0xc3, 0xa9)), '\udce2é'); // resynchronises on a lead byte
    assert.equal(nameFromBytes(bytes(0xed, 0xa0, 0x80)), '\udced\udca0\udc80'); // an encoded surrogate
    assert.equal(nameFromBytes(bytes(0xc0, 0xaf)), '\udcc0\udcaf'); // overlong '/'
    assert.equal(nameFromBytes(bytes(0xf4, 0x90, 0x80, 0x80)), '\udcf4\udc90\udc80\udc80'); // above U+10FFFF
  });

  it('turns every byte string back into the same bytes', () => {
    let seed = 7;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % 256;
    for (let n = 0; n < 2000; n++) {
      const original = Uint8Array.from({ length: 1 + (n % 17) }, next);
      const name = nameFromBytes(original);
      assert.deepEqual(nameToBytes(name), Buffer.from(original), `bytes ${Buffer.from(original).toString('hex')}`);
      assert.equal(nameFromBytes(nameToBytes(name)), name);
    }
  });

  it('refuses a lone surrogate that stands for no byte (EILSEQ)', () => {
    for (const name of ['\ud800', 'a\udbffb', '\udc7f', '\udc00']) {
      assert.throws(() => nameToBytes(name), (err: unknown) => err instanceof SlaveError && err.errnoName === 'EILSEQ');
    }
  });

  it('tells escaped names from plain Unicode, and makes them plain for protocol-1 peers', () => {
    assert.equal(hasLoneSurrogates('🙂'), false);
    assert.equal(hasLoneSurrogates('a\udcffb'), true);
    assert.equal(hasLoneSurrogates('\ud83d'), true);
    assert.equal(nameAsUnicode('a\udcff🙂'), 'a\uFFFD🙂');
  });
});
