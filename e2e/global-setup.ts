import { ensureWebBuilt } from '../coordinator/web-build';

export default function globalSetup() {
  ensureWebBuilt((msg) => console.log(msg));
}
