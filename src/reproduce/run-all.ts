// Regenerates the committed reports: `node dist/src/reproduce/run-all.js [senet] [mobilenet] [xception]`
// runs the full reproductions one after another (never in parallel: the machine has two shared cores),
// each exactly as `node dist/src/cli/main.js reproduce <name>` would.
import { REPRODUCTIONS, ReproductionName, runReproduction } from './index';

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const bad = args.filter((a) => !(REPRODUCTIONS as readonly string[]).includes(a));
  if (bad.length) throw new Error(`unknown reproduction(s) ${bad.join(', ')}; known: ${REPRODUCTIONS.join(', ')}`);
  const names = (args.length ? args : REPRODUCTIONS) as readonly ReproductionName[];
  for (const name of names) {
    const t0 = Date.now();
    const stamp = (l: string): void => console.error(`[${name} ${((Date.now() - t0) / 1000).toFixed(0)} s] ${l}`);
    const r = await runReproduction(name, { log: stamp });
    console.log(`${name}: ${r.reportPath} (${((Date.now() - t0) / 60000).toFixed(1)} min)`);
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.stack ?? e.message : String(e));
  process.exit(1);
});
