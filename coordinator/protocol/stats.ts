// The dashboard's read-only views: volunteers and grid statistics.
import { z } from 'zod';

export const VolunteerSummary = z.object({
  id: z.string(),
  name: z.string().nullable(),
  credit: z.number(),
  results: z.object({ valid: z.number().int(), invalid: z.number().int(), pending: z.number().int() }),
  online: z.boolean(),
});
export type VolunteerSummary = z.infer<typeof VolunteerSummary>;

export const GridStats = z.object({
  volunteers: z.object({ online: z.number().int(), total: z.number().int() }),
  jobs: z.object({ queued: z.number().int(), running: z.number().int(), done: z.number().int(), failed: z.number().int() }),
  /** Results by outcome: agreed with a quorum, disagreed with it, failed the independent check, not yet settled. */
  results: z.object({ agreed: z.number().int(), disagreed: z.number().int(), invalid: z.number().int(), pending: z.number().int() }),
  /** Credited FLOPs per time bucket, oldest first. */
  throughput: z.object({ bucketMs: z.number(), points: z.array(z.object({ t: z.number(), flops: z.number() })) }),
});
export type GridStats = z.infer<typeof GridStats>;
