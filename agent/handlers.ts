/** The agent's one table of op handlers. Ops missing here answer ENOSYS. */
import { statsSnapshot } from './agent-metrics.js';
import type { HandlerTable } from './context.js';
import { devOps } from './dev/dev-ops.js';
import { attrOps } from './fs/attr-ops.js';
import { dirOps } from './fs/dir-ops.js';
import { fileOps } from './fs/file-ops.js';
import { nameOps } from './fs/name-ops.js';
import { xattrOps } from './fs/xattr-ops.js';
import { procOps } from './proc/proc-ops.js';

export const handlers: HandlerTable = {
  'agent.hello': async (_args, ctx) => ctx.hello(),
  'agent.stats': async (_args, ctx) => ({ ...statsSnapshot(), changes: ctx.changes.stats() }),
  'agent.link': async (_args, ctx) => ({ link: ctx.links?.offerSession() ?? null }),
  'fs.changes': async (_args, ctx) => ctx.changes.sync(),
  ...attrOps,
  ...dirOps,
  ...fileOps,
  ...nameOps,
  ...xattrOps,
  ...procOps,
  ...devOps,
};
