// tabgrid/client: run jobs on a tabgrid coordinator from Node or a browser (package.json exports
// it as `tabgrid/client`). The same shape as the Python client:
//
//   const grid = new Grid('http://localhost:8080', token);
//   const job = await grid.matmul({ shape: [m, k], data: a }, { shape: [k, n], data: b });
//   const { shape, data } = await job.result();
//
// Browser-safe: it imports only coordinator/protocol/ (zod schemas, .npy, sha-256) and the global fetch.
export { Grid, Job, Rooms, VERSION } from './grid.js';
export type { AttentionOptions, GridOptions, JobSubmitInput, MatmulOptions, OnnxOptions, ResultOf, ResultOptions, TrainOptions, TrainSettings, LmTrainOptions, WaitOptions } from './grid.js';
export {
  ApiError,
  BadRequest,
  Conflict,
  Forbidden,
  GridConnectionError,
  InputError,
  JobFailed,
  NotFound,
  NotReady,
  PayloadTooLarge,
  RateLimited,
  ServerError,
  Unauthorized,
  WaitTimeout,
} from './errors.js';
export { parseNpy, toNpy, tensorOf } from './arrays.js';
export type { ArrayInput, Bytes, Tensor, VectorInput } from './arrays.js';
export type {
  CoordinatorInfo,
  GridStats,
  JobKindName,
  JobState,
  JobStatus,
  ModelCreated,
  RoomCreated,
  RoomInfo,
  RoomSnapshot,
  RoundStats,
  Tolerance,
  VolunteerSummary,
} from '../../coordinator/protocol/index.js';
