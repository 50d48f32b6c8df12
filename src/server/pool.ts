/**
 * What a gateway running as one worker of a pool (docs/workers.md) can ask of the pool: every worker's own report
 * of one kind, so that /metrics and /health speak for the whole pool, whichever worker a client reached. A gateway
 * on its own has no pool, and answers for itself.
 */
import type { DashboardAsk, MissingWorker, ReportKind, ReportPart } from '../cluster/messages.js';

export interface Pool {
  /** Every worker's report, this one's included, and the workers that did not answer in time. */
  gather(what: ReportKind): Promise<{ parts: ReportPart[]; missing: MissingWorker[] }>;
}

export type { DashboardAsk, ReportKind, ReportPart };
