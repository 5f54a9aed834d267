import { ensureWebBuilt } from '../coordinator/http/web-build';

export default function globalSetup() {
  ensureWebBuilt((msg) => console.log(msg));
}
