/**
 * Who the bridge asks the agent to run a command as: `--exec-user` (exec-user.ts) applied to the
 * shim's caller and to the agent's user as its hello last said. What `caller` asks for depends on
 * whether the agent is root, so a spawn names the agent boot it was decided for (`hb`): an agent
 * restarted meanwhile, perhaps as another user, answers ESTALE instead of running the command
 * with a stale decision, and the bridge asks for its hello and decides again.
 */
import type { Logger } from 'pino';
import type { HelloInfo } from '../protocol/index.js';
import { formatExecUser, spawnIds, type ExecUser, type SpawnIds } from './exec-user.js';
import type { ShimCaller } from './shim-frames.js';

export interface BridgeIdentity {
  /** The ids a command's spawn asks for, and the agent boot whose user they were decided for. */
  forCaller(caller: ShimCaller | undefined): { ids: SpawnIds; boot: string };
  /** The agent answered from another boot: learn who it runs as again. */
  relearn(): Promise<void>;
}

export class AgentIdentity implements BridgeIdentity {
  private saidOldShim = false;

  constructor(
    private readonly user: ExecUser,
    private hello: HelloInfo,
    private readonly sayHello: () => Promise<HelloInfo>,
    private readonly log: Logger,
  ) {
    this.checkFixed();
  }

  forCaller(caller: ShimCaller | undefined): { ids: SpawnIds; boot: string } {
    if (caller === undefined && this.user.kind === 'caller' && !this.saidOldShim) {
      this.saidOldShim = true;
      this.log.warn('a shim of an older bridge does not say who runs it: its commands run as the agent\'s user');
    }
    return { ids: spawnIds(this.user, caller, this.hello.euid), boot: this.hello.bootId };
  }

  async relearn(): Promise<void> {
    const before = this.hello.euid;
    this.hello = await this.sayHello();
    if (this.hello.euid !== before) {
      this.log.info({ agentEuid: this.hello.euid, previousEuid: before }, 'the agent restarted as another user');
      this.checkFixed();
    }
  }

  private checkFixed(): void {
    const { user, hello } = this;
    if (user.kind === 'fixed' && hello.euid !== 0 && user.uid !== hello.euid) {
      this.log.warn({ execUser: formatExecUser(user), agentEuid: hello.euid },
        'the agent is not root: bridged commands will fail (EPERM) unless it runs as that user');
    }
  }
}
