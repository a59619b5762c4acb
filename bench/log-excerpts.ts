/**
 * What the processes serving a target complained about during the run: their log lines
 * (pino JSON or plain text) reduced to distinct messages with a count each.
 */
import { readFile } from 'node:fs/promises';

const PINO_LEVELS: Record<number, string> = {
  10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal',
};
const MAX_PER_LOG = 10;

interface PinoLine {
  level?: number;
  msg?: string;
  err?: { message?: string; code?: string };
  op?: string;
}

function summarize(line: string): string {
  try {
    const entry = JSON.parse(line) as PinoLine;
    const level = PINO_LEVELS[entry.level ?? 0] ?? String(entry.level);
    const err = entry.err?.message ? `: ${entry.err.message}` : '';
    return `${level} ${entry.op ? `${entry.op} ` : ''}${entry.msg ?? ''}${err}`.slice(0, 200);
  } catch {
    return line.slice(0, 200);
  }
}

export async function logExcerpts(label: string, path: string): Promise<string[]> {
  const text = await readFile(path, 'utf8').catch(() => '');
  const counts = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.trim().length === 0) continue;
    const key = summarize(line);
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const lines = [...counts].map(([msg, n]) => `${label}: ${msg}${n > 1 ? ` (×${n})` : ''}`);
  if (lines.length > MAX_PER_LOG) {
    return [...lines.slice(0, MAX_PER_LOG), `${label}: ... and ${lines.length - MAX_PER_LOG} more distinct lines`];
  }
  return lines;
}
