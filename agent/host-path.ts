/**
 * Host paths as Node's fs calls take them. Names are bytes on the slave; in the agent a path
 * that is not UTF-8 is a string in surrogateescape form (protocol/name-bytes.ts), which Node
 * would write as UTF-8 of U+FFFD, naming another file. So every fs call takes `fsPath(host)`:
 * the string itself when it is plain Unicode (almost always), else its exact bytes. Names read
 * back from the slave (readdir, readlink, realpath) are read as bytes and made such strings.
 */
import { hasLoneSurrogates, nameToBytes } from '../protocol/index.js';

export function fsPath(host: string): string | Buffer {
  return hasLoneSurrogates(host) ? nameToBytes(host) : host;
}
