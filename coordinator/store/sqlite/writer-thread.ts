// The SQLite store's writer thread (started by WriterThread in sqlite-writer.ts): runs the batches
// of writes it is sent and answers each once it is on disk.
import { parentPort, workerData } from 'node:worker_threads';
import { GroupCommit, SqliteWriter, type ThreadRequest, type WriterOptions } from './writer.js';

const port = parentPort!;
const opts = workerData as WriterOptions;
const commits = new GroupCommit(new SqliteWriter(opts), opts.file, (answer) => port.postMessage(answer));

port.on('message', (msg: ThreadRequest) => {
  if ('close' in msg) void commits.close().then(() => port.postMessage({ closed: true }));
  else commits.add(msg.writes);
});
