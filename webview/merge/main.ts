// The merge panel: method, models, base, parameters and output as a form; the plan (size, shards,
// memory, time, problems) and the task-vector interference per layer before anything runs; then
// "Save Recipe" or "Merge". The form is kept in the webview state, so a reopened panel shows it.
import { provideVSCodeDesignSystem, vsCodeButton, vsCodeCheckbox, vsCodeDropdown, vsCodeOption, vsCodeProgressRing, vsCodeTextField } from '@vscode/webview-ui-toolkit';
import type { InterferenceRow, MergeForm, MergeState, MergeToHost, MergeToWebview, MethodView, ModelView, ParamScalar, ParamView, PlanView, ProblemView } from '../../src/shared/protocol/merge';
import { KIND_COLOURS, themeColourVariable } from '../../src/shared/kindColours';
import { el } from '../shared/dom';
import { connect } from '../shared/vscode';

provideVSCodeDesignSystem().register(vsCodeButton(), vsCodeCheckbox(), vsCodeDropdown(), vsCodeOption(), vsCodeProgressRing(), vsCodeTextField());

const DTYPES = ['', 'float32', 'bfloat16', 'float16'];
const channel = connect<MergeToHost, MergeToWebview, MergeState>();
let state: MergeState = channel.getState() ?? {};
let methods: MethodView[] = [];
let models: ModelView[] = [];
let trusted = true;
let form: MergeForm = state.form ?? { method: 'linear', models: [], parameters: {}, out: '' };
/** Fields whose text does not parse as their type: Merge waits until they are fixed. */
const invalid = new Set<string>();
let planRequest = 0;

function save(): void {
  state = { ...state, form };
  channel.setState(state);
}

// ---- skeleton ----
const app = document.getElementById('app')!;
const trustBanner = el('div', { className: 'trust-banner', role: 'note', hidden: true });
const methodDropdown = el('vscode-dropdown', { id: 'method', ariaLabel: 'Merge method' });
const methodSummary = el('p', { className: 'muted method-summary' });
const search = el('vscode-text-field', { id: 'model-search', placeholder: 'Filter models', ariaLabel: 'Filter models' });
const modelList = el('div', { className: 'model-list', role: 'list' });
const baseDropdown = el('vscode-dropdown', { id: 'base', ariaLabel: 'Base model' });
const baseRow = el('div', { className: 'field' }, [el('label', { htmlFor: 'base', textContent: 'Base model' }), baseDropdown]);
const targetDropdown = el('vscode-dropdown', { id: 'target', ariaLabel: 'New base (target model)' });
const targetRow = el('div', { className: 'field' }, [el('label', { htmlFor: 'target', textContent: 'New base (target_model)' }), targetDropdown]);
const paramsBox = el('div', { className: 'params' });
const dtypeDropdown = el('vscode-dropdown', { id: 'dtype', ariaLabel: 'Compute dtype' }, DTYPES.map((d) => el('vscode-option', { value: d, textContent: d || 'as the inputs' })));
const outField = el('vscode-text-field', { id: 'out', placeholder: 'Absolute path of a new folder', ariaLabel: 'Output folder', className: 'wide' });
const browseButton = el('vscode-button', { appearance: 'secondary', textContent: 'Browse…', id: 'browse' });
const planButton = el('vscode-button', { appearance: 'secondary', textContent: 'Plan', id: 'plan-button' });
const saveButton = el('vscode-button', { appearance: 'secondary', textContent: 'Save Recipe', id: 'save-button' });
const untitledButton = el('vscode-button', { appearance: 'secondary', textContent: 'Open as Untitled', id: 'untitled-button', title: 'Show the recipe in an editor without saving it' });
const mergeButton = el('vscode-button', { appearance: 'primary', textContent: 'Merge', id: 'merge-button' });
const status = el('div', { id: 'status', className: 'status', ariaLive: 'polite', dataset: { state: 'idle' } });
const planBox = el('section', { className: 'plan', ariaLabel: 'Plan' });
const interferenceBox = el('section', { className: 'interference', ariaLabel: 'Interference of the task vectors' });

app.replaceChildren(
  el('header', { className: 'toolbar' }, [el('h1', { className: 'merge-title', textContent: 'Merge Models' })]),
  trustBanner,
  el('main', { className: 'merge-body' }, [
    el('div', { className: 'form' }, [
      el('div', { className: 'field' }, [el('label', { htmlFor: 'method', textContent: 'Method' }), methodDropdown]),
      methodSummary,
      el('h2', { textContent: 'Models' }),
      search,
      modelList,
      baseRow,
      targetRow,
      el('h2', { textContent: 'Parameters' }),
      paramsBox,
      el('div', { className: 'field' }, [el('label', { htmlFor: 'dtype', textContent: 'Compute dtype' }), dtypeDropdown]),
      el('h2', { textContent: 'Output' }),
      el('div', { className: 'field output-row' }, [outField, browseButton]),
      el('div', { className: 'actions' }, [planButton, saveButton, untitledButton, mergeButton]),
      status,
    ]),
    el('div', { className: 'review' }, [planBox, interferenceBox]),
  ]),
);

// ---- messages ----
channel.onMessage((message) => {
  switch (message.type) {
    case 'init':
      methods = message.methods;
      models = message.models;
      trusted = message.trusted;
      if (message.prefill) form = { ...form, ...message.prefill, models: message.prefill.models ?? form.models, parameters: message.prefill.parameters ?? form.parameters };
      if (!methods.some((m) => m.name === form.method)) form.method = methods[0]?.name ?? 'linear';
      save();
      renderAll();
      break;
    case 'models':
      models = message.models;
      renderModels();
      renderBase();
      break;
    case 'plan':
      if (message.requestId !== planRequest) return;
      renderPlan(message.plan, message.problems, message.error);
      break;
    case 'interference':
      if (message.requestId !== planRequest) return;
      renderInterference(message.rows, message.note);
      break;
    case 'output':
      form.out = message.path;
      (outField as unknown as { value: string }).value = form.out;
      changed();
      break;
    case 'status':
      setStatus(message.state, message.message);
      break;
  }
});

function currentMethod(): MethodView | undefined {
  return methods.find((m) => m.name === form.method);
}

function setStatus(kind: string, text: string): void {
  status.dataset.state = kind;
  status.replaceChildren(...(kind === 'running' ? [el('vscode-progress-ring'), text] : [text]));
}

/** Something changed: keep it, and mark the plan as stale. */
function changed(): void {
  save();
  if (planBox.dataset.state === 'ready') {
    planBox.dataset.state = 'stale';
    planBox.classList.add('stale');
  }
  updateActions();
}

function updateActions(): void {
  const method = currentMethod();
  const problems: string[] = [];
  const count = form.models.length + (method?.baseCounts && form.base ? 1 : 0);
  if (!method) problems.push('Choose a method.');
  else {
    if (count < method.minModels) problems.push(`${method.name} needs at least ${method.minModels} model${method.minModels === 1 ? '' : 's'}${method.baseCounts ? ' (the base counts as one)' : ''}.`);
    if (method.maxModels !== undefined && count > method.maxModels) problems.push(`${method.name} takes at most ${method.maxModels} model${method.maxModels === 1 ? '' : 's'}.`);
    if (method.base === 'required' && !form.base) problems.push(`${method.name} needs a base model.`);
    if (method.target && !form.target) problems.push('Choose the new base (target model).');
  }
  if (invalid.size) problems.push(`Fix ${[...invalid].join(', ')}.`);
  if (!form.out) problems.push('Choose an output folder.');
  const blocked = problems.length > 0;
  for (const button of [planButton, saveButton, mergeButton]) button.toggleAttribute('disabled', blocked);
  mergeButton.toggleAttribute('disabled', blocked || !trusted);
  mergeButton.title = trusted ? '' : 'Restricted Mode: merging writes files and needs a trusted workspace.';
  if (status.dataset.state !== 'running') setStatus(blocked ? 'incomplete' : 'idle', blocked ? problems.join(' ') : 'Ready: Plan to review, or Merge.');
}

// ---- rendering ----
function renderAll(): void {
  trustBanner.hidden = trusted;
  trustBanner.textContent = trusted ? '' : 'Restricted Mode: you can build and plan a recipe here, but Graft writes no files until you trust this workspace.';
  methodDropdown.replaceChildren(...methods.map((m) => el('vscode-option', { value: m.name, textContent: m.name, title: m.summary })));
  (methodDropdown as unknown as { value: string }).value = form.method;
  (dtypeDropdown as unknown as { value: string }).value = form.dtype ?? '';
  (outField as unknown as { value: string }).value = form.out;
  (search as unknown as { value: string }).value = state.search ?? '';
  renderMethod();
}

function renderMethod(): void {
  const method = currentMethod();
  methodSummary.textContent = method?.summary ?? '';
  baseRow.hidden = !method || method.base === 'none';
  targetRow.hidden = !method?.target;
  // Parameters of another method would not parse: keep only this method's.
  const globals = new Set(method?.parameters.map((p) => p.name));
  const perModel = new Set(method?.tensorParameters.map((p) => p.name));
  form.parameters = Object.fromEntries(Object.entries(form.parameters).filter(([k]) => globals.has(k)));
  for (const m of form.models) m.parameters = Object.fromEntries(Object.entries(m.parameters).filter(([k]) => perModel.has(k)));
  invalid.clear();
  renderModels();
  renderBase();
  renderParams();
  changed();
}

function kindColour(kind: string): string {
  const colour = KIND_COLOURS[kind as keyof typeof KIND_COLOURS] ?? KIND_COLOURS.finetune;
  return `var(${themeColourVariable(colour.themeColour)}, ${colour.fallback})`;
}

function renderModels(): void {
  const filter = (state.search ?? '').toLowerCase();
  const selected = new Set(form.models.map((m) => m.path));
  const method = currentMethod();
  const shown = models.filter((m) => selected.has(m.path) || !filter || m.label.toLowerCase().includes(filter) || m.description.toLowerCase().includes(filter));
  modelList.replaceChildren(
    ...shown.map((model) => {
      const checkbox = el('vscode-checkbox', { checked: selected.has(model.path), ariaLabel: `Merge ${model.label}`, dataset: { path: model.path } });
      const row = el('div', { className: 'model-row', role: 'listitem', dataset: { path: model.path, kind: model.kind } }, [
        checkbox,
        el('span', { className: 'kind-dot', title: model.kind, style: `background:${kindColour(model.kind)}` }),
        el('span', { className: 'model-label', textContent: model.label }),
        el('span', { className: 'muted model-path', textContent: model.description }),
      ]);
      const entry = form.models.find((m) => m.path === model.path);
      if (entry && method?.tensorParameters.length) {
        row.append(el('div', { className: 'model-params' }, method.tensorParameters.map((def) => paramInput(def, entry.parameters, `${model.label} ${def.name}`))));
      }
      return row;
    }),
  );
  if (models.length === 0) modelList.append(el('p', { className: 'muted', textContent: 'No safetensors models are indexed yet. Graft lists the models of the Lineage view here.' }));
}

/** The common parent of the chosen models, offered first as the base. */
function commonParent(): string | undefined {
  const lists = form.models.map((m) => models.find((x) => x.path === m.path)?.parents ?? []);
  return lists[0]?.find((p) => lists.every((l) => l.includes(p)));
}

function renderBase(): void {
  const common = commonParent();
  const options = (selectedPath: string | undefined, allowNone: boolean) => [
    ...(allowNone ? [el('vscode-option', { value: '', textContent: 'No base' })] : []),
    ...models
      .slice()
      .sort((a, b) => Number(b.path === common) - Number(a.path === common))
      .map((m) => el('vscode-option', { value: m.path, textContent: m.path === common ? `${m.label} (common parent)` : m.label, selected: m.path === selectedPath })),
  ];
  const method = currentMethod();
  if (method && method.base !== 'none' && !form.base && common) form.base = common;
  baseDropdown.replaceChildren(...options(form.base, method?.base !== 'required'));
  (baseDropdown as unknown as { value: string }).value = form.base ?? '';
  targetDropdown.replaceChildren(...options(form.target, true));
  (targetDropdown as unknown as { value: string }).value = form.target ?? '';
}

function renderParams(): void {
  const method = currentMethod();
  const defs = method?.parameters ?? [];
  paramsBox.replaceChildren(
    ...(defs.length ? defs.map((def) => paramInput(def, form.parameters, def.name)) : [el('p', { className: 'muted', textContent: `${form.method} has no parameters for the whole merge.` })]),
    ...(method?.tensorParameters.length ? [el('p', { className: 'muted', textContent: `Per model: ${method.tensorParameters.map((p) => p.name).join(', ')} (beside each chosen model). A list such as "0, 0.5, 1" is a gradient over the layers.` })] : []),
  );
}

/** A typed input for one parameter; numbers accept a comma-separated gradient, drawn as a small curve. */
function paramInput(def: ParamView, target: Record<string, ParamScalar | number[]>, label: string): HTMLElement {
  const key = label;
  const current = target[def.name];
  const wrap = el('div', { className: 'param', title: def.doc, dataset: { param: def.name } });
  const caption = el('span', { className: 'param-name', textContent: def.name });
  if (def.kind === 'boolean') {
    const box = el('vscode-checkbox', { checked: current === undefined ? def.default === true : current === true, textContent: def.name, ariaLabel: label });
    box.addEventListener('change', () => {
      target[def.name] = (box as unknown as { checked: boolean }).checked;
      changed();
    });
    wrap.append(box);
    return wrap;
  }
  if (def.choices) {
    const dropdown = el('vscode-dropdown', { ariaLabel: label }, [el('vscode-option', { value: '', textContent: `default${def.default !== undefined ? ` (${String(def.default)})` : ''}` }), ...def.choices.map((c) => el('vscode-option', { value: c, textContent: c, selected: current === c }))]);
    dropdown.addEventListener('change', () => {
      const value = (dropdown as unknown as { value: string }).value;
      if (value) target[def.name] = value;
      else delete target[def.name];
      changed();
    });
    wrap.append(caption, dropdown);
    return wrap;
  }
  const text = current === undefined ? '' : Array.isArray(current) ? current.join(', ') : String(current);
  const field = el('vscode-text-field', { value: text, placeholder: def.default !== undefined ? String(def.default) : def.required ? 'required' : '', ariaLabel: label, size: 8 });
  const curve = el('span', { className: 'curve' });
  const error = el('span', { className: 'param-error', role: 'alert' });
  const apply = () => {
    const raw = (field as unknown as { value: string }).value.trim();
    error.textContent = '';
    invalid.delete(key);
    curve.replaceChildren();
    if (raw === '') delete target[def.name];
    else if (def.kind === 'string') target[def.name] = raw;
    else {
      const parts = raw.split(/[\s,]+/).filter(Boolean).map(Number);
      const outside = parts.find((v) => (def.min !== undefined && v < def.min) || (def.max !== undefined && v > def.max));
      if (parts.some((v) => !Number.isFinite(v))) {
        error.textContent = 'a number, or numbers separated by commas';
        invalid.add(key);
      } else if (outside !== undefined) {
        error.textContent = `${outside} is outside ${def.min ?? '−∞'} to ${def.max ?? '∞'}`;
        invalid.add(key);
      } else if (parts.length === 1) target[def.name] = parts[0];
      else {
        target[def.name] = parts;
        curve.append(gradientEditor(parts, def, label, dragged));
      }
    }
    field.classList.toggle('invalid', invalid.has(key));
    changed();
  };
  // A drag edits the values in place: the text follows, the editor is not rebuilt under the pointer.
  const dragged = (values: number[]) => {
    (field as unknown as { value: string }).value = values.join(', ');
    target[def.name] = values.slice();
    changed();
  };
  field.addEventListener('input', apply);
  if (Array.isArray(current)) curve.append(gradientEditor(current.slice(), def, label, dragged));
  wrap.append(caption, field, curve, error);
  return wrap;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/**
 * A gradient's values over the layers as a line with one handle per value: drag a handle, or focus
 * it and use the arrow keys (Shift for larger steps, Home/End for the ends of the range). The
 * vertical range is the parameter's declared bounds, else 0 to 1 widened to the values.
 */
function gradientEditor(values: number[], def: ParamView, label: string, onChange: (values: number[]) => void): SVGSVGElement {
  const width = 132;
  const height = 40;
  const pad = 5;
  const lo = def.min ?? Math.min(0, ...values);
  const hi = def.max ?? Math.max(1, ...values);
  const span = hi - lo || 1;
  const x = (i: number) => pad + (i / (values.length - 1)) * (width - 2 * pad);
  const y = (v: number) => height - pad - ((v - lo) / span) * (height - 2 * pad);
  const clamp = (v: number) => Math.min(hi, Math.max(lo, Math.round(v * 1000) / 1000));
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('width', String(width));
  svg.setAttribute('height', String(height));
  svg.setAttribute('class', 'gradient-editor');
  svg.setAttribute('role', 'group');
  svg.setAttribute('aria-label', `${label}: gradient over the layers`);
  const line = document.createElementNS(SVG_NS, 'polyline');
  line.setAttribute('class', 'curve-line');
  svg.append(line);
  const handles = values.map((_, i) => {
    const handle = document.createElementNS(SVG_NS, 'circle');
    handle.setAttribute('r', '4');
    handle.setAttribute('class', 'curve-handle');
    handle.setAttribute('tabindex', '0');
    handle.setAttribute('role', 'slider');
    handle.setAttribute('aria-label', `${label}, point ${i + 1} of ${values.length}`);
    handle.setAttribute('aria-valuemin', String(lo));
    handle.setAttribute('aria-valuemax', String(hi));
    handle.dataset.index = String(i);
    svg.append(handle);
    return handle;
  });
  const draw = () => {
    line.setAttribute('points', values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' '));
    handles.forEach((handle, i) => {
      handle.setAttribute('cx', x(i).toFixed(1));
      handle.setAttribute('cy', y(values[i]).toFixed(1));
      handle.setAttribute('aria-valuenow', String(values[i]));
      handle.setAttribute('aria-valuetext', String(values[i]));
    });
  };
  const set = (i: number, v: number) => {
    const next = clamp(v);
    if (next === values[i]) return;
    values[i] = next;
    draw();
    onChange(values);
  };
  handles.forEach((handle, i) => {
    handle.addEventListener('pointerdown', (event) => {
      handle.setPointerCapture(event.pointerId);
      // preventDefault keeps text from being selected, but also the focus a press gives: give it back.
      event.preventDefault();
      handle.focus();
    });
    handle.addEventListener('pointermove', (event) => {
      if (!handle.hasPointerCapture(event.pointerId)) return;
      const box = svg.getBoundingClientRect();
      set(i, lo + ((height - pad - (event.clientY - box.top)) / (height - 2 * pad)) * span);
    });
    handle.addEventListener('keydown', (event) => {
      const step = (event.shiftKey ? 0.1 : 0.01) * span;
      const moves: Record<string, number> = { ArrowUp: values[i] + step, ArrowRight: values[i] + step, ArrowDown: values[i] - step, ArrowLeft: values[i] - step, Home: lo, End: hi };
      if (!(event.key in moves)) return;
      event.preventDefault();
      set(i, moves[event.key]);
    });
  });
  draw();
  return svg;
}

function formatBytes(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value < 10 && unit > 0 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

function formatSeconds(seconds: number): string {
  if (seconds < 1) return 'under a second';
  if (seconds < 90) return `about ${Math.round(seconds)} s`;
  return `about ${Math.round(seconds / 60)} min`;
}

function renderPlan(plan: PlanView | undefined, problems: ProblemView[] | undefined, error: string | undefined): void {
  planBox.classList.remove('stale');
  if (plan) {
    planBox.dataset.state = 'ready';
    const fact = (label: string, value: string) => el('div', { className: 'fact' }, [el('span', { className: 'muted', textContent: label }), el('span', { className: 'mono', textContent: value })]);
    planBox.replaceChildren(
      el('h2', { textContent: 'Plan' }),
      el('div', { className: 'plan-summary', dataset: { tensors: String(plan.tensors), bytes: String(plan.outputBytes) } }, [
        fact('Method', plan.method),
        fact('Output', `${plan.tensors} tensors, ${formatBytes(plan.outputBytes)}`),
        fact('Shards', String(plan.shards)),
        ...(plan.layers !== undefined ? [fact('Layers', String(plan.layers))] : []),
        fact('Peak memory', formatBytes(plan.peakBytes)),
        fact('Time', formatSeconds(plan.seconds)),
      ]),
      ...(plan.warnings.length ? [el('ul', { className: 'warnings' }, plan.warnings.map((w) => el('li', { textContent: w })))] : [el('p', { className: 'muted', textContent: 'No mismatch between the inputs: every tensor name, shape and vocabulary agrees.' })]),
      el('details', {}, [el('summary', { textContent: `Recipe (${plan.recipeFile})` }), el('pre', { className: 'mono recipe-text', textContent: plan.recipeText })]),
    );
    return;
  }
  planBox.dataset.state = 'problems';
  planBox.replaceChildren(
    el('h2', { textContent: 'Plan' }),
    el('div', { className: 'error-banner', role: 'alert' }, [
      el('h2', { textContent: problems?.length ? `The recipe has ${problems.length} problem${problems.length === 1 ? '' : 's'}` : 'Cannot plan this merge' }),
      ...(problems?.length ? [el('ul', {}, problems.map((p) => el('li', { textContent: p.message })))] : [el('p', { textContent: error ?? '' })]),
    ]),
  );
  interferenceBox.replaceChildren();
}

function renderInterference(rows: InterferenceRow[] | undefined, note: string): void {
  if (!rows?.length) {
    interferenceBox.replaceChildren(el('h2', { textContent: 'Interference' }), el('p', { className: 'muted', textContent: note }));
    return;
  }
  const worst = rows.reduce((a, b) => (b.conflict > a.conflict ? b : a));
  interferenceBox.replaceChildren(
    el('h2', { textContent: 'Interference of the task vectors' }),
    el('p', { className: 'muted', textContent: `${note} High sign conflict or a low cosine means the fine-tunes pull these layers in different directions: TIES or DARE resolve that better than an average. Most conflict: ${worst.label} (${(worst.conflict * 100).toFixed(1)}%).` }),
    el('table', { className: 'interference-table' }, [
      el('tr', {}, [el('th', { textContent: 'Layer' }), el('th', { textContent: 'Sign conflict' }), el('th', { textContent: 'Task vector cosine' })]),
      ...rows.map((r) =>
        el('tr', { dataset: { conflict: String(r.conflict), cosine: String(r.cosine) } }, [
          el('th', { scope: 'row', textContent: r.label }),
          el('td', {}, [el('span', { className: 'bar conflict', style: `width:${Math.round(Math.min(1, r.conflict * 2) * 120)}px` }), el('span', { className: 'mono', textContent: ` ${(r.conflict * 100).toFixed(1)}%` })]),
          el('td', {}, [el('span', { className: 'bar cosine', style: `width:${Math.round(Math.max(0, Math.abs(r.cosine)) * 120)}px` }), el('span', { className: 'mono', textContent: ` ${r.cosine.toFixed(3)}` })]),
        ]),
      ),
    ]),
  );
}

// ---- events ----
methodDropdown.addEventListener('change', () => {
  const value = (methodDropdown as unknown as { value: string }).value;
  if (value && value !== form.method) {
    form.method = value;
    renderMethod();
  }
});
search.addEventListener('input', () => {
  state = { ...state, search: (search as unknown as { value: string }).value };
  channel.setState(state);
  renderModels();
});
modelList.addEventListener('change', (event) => {
  const box = (event.target as HTMLElement).closest<HTMLElement>('vscode-checkbox[data-path]');
  if (!box) return;
  const target = box.dataset.path!;
  const checked = (box as unknown as { checked: boolean }).checked;
  const has = form.models.some((m) => m.path === target);
  if (checked && !has) form.models.push({ path: target, parameters: {} });
  if (!checked && has) form.models = form.models.filter((m) => m.path !== target);
  renderModels();
  renderBase();
  changed();
});
baseDropdown.addEventListener('change', () => {
  form.base = (baseDropdown as unknown as { value: string }).value || undefined;
  changed();
});
targetDropdown.addEventListener('change', () => {
  form.target = (targetDropdown as unknown as { value: string }).value || undefined;
  changed();
});
dtypeDropdown.addEventListener('change', () => {
  form.dtype = (dtypeDropdown as unknown as { value: string }).value || undefined;
  changed();
});
outField.addEventListener('input', () => {
  form.out = (outField as unknown as { value: string }).value.trim();
  changed();
});
browseButton.addEventListener('click', () => channel.post({ type: 'browseOutput', current: form.out }));
planButton.addEventListener('click', () => requestPlan());
saveButton.addEventListener('click', () => channel.post({ type: 'save', form }));
untitledButton.addEventListener('click', () => channel.post({ type: 'openRecipe', form }));
mergeButton.addEventListener('click', () => {
  if (mergeButton.hasAttribute('disabled')) return;
  setStatus('running', `Merging into ${form.out}…`);
  channel.post({ type: 'merge', form });
});

function requestPlan(): void {
  planRequest++;
  planBox.dataset.state = 'planning';
  planBox.replaceChildren(el('h2', { textContent: 'Plan' }), el('vscode-progress-ring'));
  interferenceBox.replaceChildren(el('h2', { textContent: 'Interference' }), el('p', { className: 'muted', textContent: 'Comparing the task vectors…' }));
  channel.post({ type: 'plan', requestId: planRequest, form });
}

// Until the host answers 'ready' with the methods, show what the saved state has.
planBox.replaceChildren(el('h2', { textContent: 'Plan' }), el('p', { className: 'muted', textContent: 'Plan shows the output size, shards, memory and time before anything is written.' }));
