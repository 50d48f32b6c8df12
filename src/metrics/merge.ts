/**
 * One scrape for a pool of workers: each worker's exposition (Prometheus text format), merged into one, every
 * sample labelled with the worker it came from (`worker="2"`). Nothing is summed here: Prometheus does that
 * (`sum without (worker) (rate(heimdall_requests_total[1m]))`), and a gauge such as a worker's event-loop lag only
 * means something per worker. The format wants each family's lines together, so the samples of one family from
 * every worker follow its HELP and TYPE lines, in worker order.
 */

interface Family {
  /** `# HELP` and `# TYPE` lines, from the first worker that had them. */
  head: string[];
  samples: string[];
}

export function mergeExpositions(parts: readonly { worker: string; text: string }[]): string {
  const families = new Map<string, Family>();
  const familyOf = (name: string): Family => {
    let f = families.get(name);
    if (f === undefined) {
      f = { head: [], samples: [] };
      families.set(name, f);
    }
    return f;
  };
  for (const { worker, text } of parts) {
    const label = `worker="${escapeLabel(worker)}"`;
    const seenHead = new Set<string>();
    let current: Family | undefined;
    let currentName = '';
    for (const line of text.split('\n')) {
      if (line === '') continue;
      const meta = /^# (HELP|TYPE) (\S+)/.exec(line);
      if (meta !== null) {
        const name = meta[2] as string;
        if (name !== currentName) {
          current = familyOf(name);
          currentName = name;
        }
        const f = current as Family;
        if (!seenHead.has(line) && f.samples.length === 0 && !f.head.some((h) => h.startsWith(`# ${meta[1]} `))) f.head.push(line);
        seenHead.add(line);
        continue;
      }
      if (line.startsWith('#')) continue;
      // A sample without a family heading of its own belongs to a family of its own name.
      const name = /^[A-Za-z_:][A-Za-z0-9_:]*/.exec(line)?.[0] ?? '';
      if (current === undefined || !belongsTo(name, currentName)) {
        current = familyOf(name);
        currentName = name;
      }
      current.samples.push(withLabel(line, name, label));
    }
  }
  const out: string[] = [];
  for (const f of families.values()) out.push(...f.head, ...f.samples);
  return `${out.join('\n')}\n`;
}

/** A histogram's or summary's `_bucket`, `_sum` and `_count` samples belong to the family they extend. */
function belongsTo(sample: string, family: string): boolean {
  return sample === family || (sample.startsWith(family) && /^_(bucket|sum|count|total|created)$/.test(sample.slice(family.length)));
}

function withLabel(line: string, name: string, label: string): string {
  const rest = line.slice(name.length);
  if (rest.startsWith('{}')) return `${name}{${label}}${rest.slice(2)}`;
  if (rest.startsWith('{')) return `${name}{${label},${rest.slice(1)}`;
  return `${name}{${label}}${rest}`;
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}
