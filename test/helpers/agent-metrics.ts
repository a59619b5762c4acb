/** What an agent started with `--metrics 127.0.0.1:PORT` reports about itself. */

/** How many times the agent served `op`, whatever the result. */
export async function agentOps(port: number, op: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return text.split('\n').filter((l) => l.startsWith(`splitbrain_agent_ops_total{op="${op}",`))
    .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}
