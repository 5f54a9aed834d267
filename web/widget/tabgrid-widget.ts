// <tabgrid-widget coordinator="https://grid.example.org" project="Protein folding">: a volunteer
// client any page can embed. Styles live in its shadow root; nothing runs until the visitor presses
// its own Start button. The compute worker comes from the coordinator (see coordinatorWorker); the
// coordinator allows cross-origin calls and loads (CORS, CORP) and WebSocket connections.
import { formatFlops, formatRate } from '../client/format';
import type { ClientState, CoordinatorClient } from '../client/coordinator-client';
import { watchVisibility } from '../client/pause-watchers';
import { startVolunteering } from '../client/volunteer-session';
import { loadSettings } from '../store/settings';

/**
 * The coordinator's built compute worker (vite.config.ts gives it this fixed name). A worker cannot
 * be started from another origin's URL, but a module worker made from a blob can import one (with
 * CORS): the worker script then runs with the coordinator's URL as its base, so its own chunks —
 * onnxruntime-web and its .wasm for the CPU backend and ONNX units — load from the coordinator too.
 * (An inlined worker could not load them: relative URLs do not resolve against a blob: URL.)
 */
export function coordinatorWorker(coordinator: string): Worker {
  const script = `import ${JSON.stringify(`${coordinator}/assets/compute.worker.js`)};`;
  return new Worker(URL.createObjectURL(new Blob([script], { type: 'text/javascript' })), { type: 'module', name: 'tabgrid-compute' });
}

const STYLE = `
:host { display: inline-block; font: 14px/1.4 system-ui, -apple-system, 'Segoe UI', sans-serif; color: #e2e8f0; }
.box { background: #1e293b; border: 1px solid #334155; border-radius: 12px; padding: 12px 14px; min-width: 240px; max-width: 360px; }
.title { font-weight: 700; margin: 0 0 4px; }
.muted { color: #94a3b8; margin: 0 0 8px; font-size: 12px; }
.stats { display: flex; gap: 12px; margin: 6px 0; }
.stats div { display: flex; flex-direction: column; }
.stats b { font-size: 16px; }
.stats span { color: #94a3b8; font-size: 11px; text-transform: uppercase; letter-spacing: .04em; }
button { font: inherit; padding: 6px 12px; border-radius: 8px; border: 1px solid #475569; background: #334155; color: inherit; cursor: pointer; }
button.primary { background: #22c55e; border-color: #16a34a; color: #052e16; font-weight: 700; }
button:focus-visible { outline: 3px solid #38bdf8; outline-offset: 2px; }
.error { color: #f87171; }
`;

const PHASES: Record<ClientState['phase'], string> = {
  connecting: 'connecting…',
  waiting: 'waiting for work',
  paused: 'paused',
  fetching: 'fetching inputs',
  computing: 'computing',
  uploading: 'uploading result',
  disconnected: 'reconnecting…',
  stopped: 'stopped',
};

export class TabgridWidget extends HTMLElement {
  static observedAttributes = ['coordinator', 'project'];
  private readonly root: ShadowRoot;
  private client: CoordinatorClient | null = null;
  private unwatch: (() => void) | null = null;

  constructor() {
    super();
    this.root = this.attachShadow({ mode: 'open' });
  }

  private get coordinator(): string {
    return (this.getAttribute('coordinator') ?? location.origin).replace(/\/+$/, '');
  }

  private get project(): string {
    return this.getAttribute('project') ?? 'science';
  }

  connectedCallback() {
    if (!this.client) this.renderIntro();
  }

  disconnectedCallback() {
    this.unwatch?.();
    this.client?.stop();
    this.client = null;
  }

  attributeChangedCallback() {
    if (this.isConnected && !this.client) this.renderIntro();
  }

  private shell(inner: string) {
    this.root.innerHTML = `<style>${STYLE}</style><div class="box" role="region" aria-label="tabgrid volunteer computing">${inner}</div>`;
  }

  private renderIntro(error?: string) {
    this.shell(`
      <p class="title">Help ${escapeHtml(this.project)} with your GPU</p>
      <p class="muted">Pressing Start lets this page compute matrix products and ONNX models for researchers on your GPU (WebGPU) or CPU (WebAssembly), whichever is faster, via
        <a href="${escapeHtml(this.coordinator)}/" target="_blank" rel="noopener" style="color:#38bdf8">${escapeHtml(new URL(this.coordinator).host)}</a>,
        while this tab is visible. Nothing else on your device is read. Stop at any time.</p>
      ${error ? `<p class="error" role="alert">${escapeHtml(error)}</p>` : ''}
      <button class="primary" part="start">Start computing</button>`);
    this.root.querySelector('button')!.addEventListener('click', () => void this.start());
  }

  private async start() {
    const button = this.root.querySelector('button')!;
    button.disabled = true;
    button.textContent = 'Starting…';
    try {
      const started = await startVolunteering({
        createWorker: () => coordinatorWorker(this.coordinator),
        url: this.coordinator,
        settings: await loadSettings(),
        onChange: (s) => this.renderStatus(s),
        search: '', // the host page's query is not ours: no `?backend=` override here
      });
      this.client = started.client;
      const c = started.client;
      this.unwatch = watchVisibility((r, on) => c.setPause(r, on));
      this.renderStatus(c.state);
    } catch (err) {
      this.renderIntro((err as Error).message);
    }
  }

  private renderStatus(s: ClientState) {
    if (!this.client && s.phase !== 'connecting') return;
    const running = s.phase !== 'stopped';
    this.shell(`
      <p class="title">Computing for ${escapeHtml(this.project)}</p>
      <p class="muted" role="status" aria-live="polite" data-testid="widget-phase">${PHASES[s.phase]}${s.current ? ` · ${escapeHtml(s.current.shape)}` : ''}</p>
      <div class="stats">
        <div><b data-testid="widget-units">${s.unitsDone}</b><span>units</span></div>
        <div><b>${s.lastGflops == null ? '–' : formatRate(s.lastGflops)}</b><span>speed</span></div>
        <div><b data-testid="widget-credit">${formatFlops(s.credit)}</b><span>credit</span></div>
      </div>
      <button>${running ? 'Stop' : 'Start again'}</button>`);
    this.root.querySelector('button')!.addEventListener('click', () => (running ? this.client?.stop() : this.client?.start()));
  }
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function defineTabgridWidget() {
  if (!customElements.get('tabgrid-widget')) customElements.define('tabgrid-widget', TabgridWidget);
}
