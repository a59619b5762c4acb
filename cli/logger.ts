/** The root pino logger of a command: quiet (warn) by default, to stderr or a file. */
import { pino, type Logger } from 'pino';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export function createLogger(level: string, file?: string): Logger {
  const destination = pino.destination({ dest: file ?? 2, sync: true, mkdir: file !== undefined });
  return pino({ level, base: { pid: process.pid } }, destination);
}
