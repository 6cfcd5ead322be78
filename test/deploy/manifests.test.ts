import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { Copy, DockerfileParser, type Instruction, JSONInstruction, Label } from 'dockerfile-ast';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { ensureTool, TOOLS } from '../../infra/tools';
import { tempered } from '../support/cli';

// deploy/: the kustomize overlays rendered by a real kustomize (built from its Go module, like the
// local servers) and every object checked against the Kubernetes API's JSON schemas
// (kubernetes-models: ajv validators generated from the Kubernetes OpenAPI spec, shipped in the npm
// package, so nothing is fetched at run time); the Dockerfiles parsed with dockerfile-ast and held
// to the repository and the CLI. No image is built here: that needs a Docker engine.

const ROOT = path.resolve(__dirname, '../..');
const K8S = path.join(ROOT, 'deploy/k8s');
const IMAGES = path.join(ROOT, 'deploy/images');
const OVERLAYS = readdirSync(path.join(K8S, 'overlays')).sort();
const SECRET_NAME = 'tempered-secrets';

/** A rendered object, as far as these checks read it. */
interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string }; configMapKeyRef?: { name: string; key: string } };
}

interface Container {
  name: string;
  image: string;
  args?: string[];
  env?: EnvVar[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  ports?: { name?: string; containerPort: number }[];
  resources?: { requests?: Record<string, string | number>; limits?: Record<string, string | number> };
  readinessProbe?: { httpGet?: { path: string; port: string | number } };
  livenessProbe?: { httpGet?: { path: string; port: string | number } };
  startupProbe?: { httpGet?: { path: string; port: string | number } };
}

interface PodSpec {
  serviceAccountName?: string;
  containers: Container[];
  nodeSelector?: Record<string, string>;
  tolerations?: { key?: string; operator?: string; effect?: string }[];
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number };
}

interface Deployment extends K8sObject {
  spec: { selector: { matchLabels: Record<string, string> }; template: { metadata: { labels: Record<string, string> }; spec: PodSpec } };
}

/** A kubernetes-models class: `new Model(data).validate()` throws on the first schema violation. */
type ModelClass = new (data: unknown) => { validate(): void };

/**
 * Validates `object` against the schema of its apiVersion/kind. A kind the schemas do not know is
 * an error too (a misspelt kind or apiVersion must not pass as "nothing to check").
 */
function validateObject(object: K8sObject): void {
  const group = object.apiVersion.includes('/') ? object.apiVersion : `v1`;
  let models: Record<string, ModelClass>;
  try {
    models = require(`kubernetes-models/${group}`) as Record<string, ModelClass>;
  } catch {
    throw new Error(`${object.kind}/${object.metadata?.name}: no schemas for apiVersion "${object.apiVersion}"`);
  }
  const Model = models[object.kind];
  if (typeof Model !== 'function') throw new Error(`${object.kind}/${object.metadata?.name}: apiVersion "${object.apiVersion}" has no kind "${object.kind}"`);
  try {
    new Model(object).validate();
  } catch (err) {
    throw new Error(`${object.kind}/${object.metadata?.name}: ${(err as Error).message}`);
  }
}

function parseObjects(text: string, source: string): K8sObject[] {
  return parseAllDocuments(text).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`${source}: ${doc.errors[0].message}`);
    return doc.toJS() as K8sObject;
  });
}

const execFileAsync = promisify(execFile);
let kustomize: string;
const rendered = new Map<string, K8sObject[]>();

beforeAll(async () => {
  const started = Date.now();
  kustomize = await ensureTool(TOOLS.kustomize, (line) => process.stderr.write(`[deploy test] ${line}\n`));
  for (const overlay of OVERLAYS) {
    const { stdout } = await execFileAsync(kustomize, ['build', path.join(K8S, 'overlays', overlay)], { maxBuffer: 16 * 1024 * 1024 });
    rendered.set(overlay, parseObjects(stdout, `kustomize build overlays/${overlay}`));
  }
  process.stderr.write(`[deploy test] kustomize ${TOOLS.kustomize.version} rendered ${OVERLAYS.join(', ')} in ${Date.now() - started} ms\n`);
}, 900_000);

function objectsOf(overlay: string): K8sObject[] {
  const objects = rendered.get(overlay);
  if (!objects) throw new Error(`overlay ${overlay} was not rendered`);
  return objects;
}

function deployment(overlay: string, component: string): Deployment {
  const found = objectsOf(overlay).filter((o) => o.kind === 'Deployment' && o.metadata.labels?.['app.kubernetes.io/component'] === component);
  expect(found).toHaveLength(1);
  return found[0] as Deployment;
}

function containersOf(objects: K8sObject[]): { owner: string; container: Container }[] {
  return objects
    .filter((o): o is Deployment => o.kind === 'Deployment')
    .flatMap((d) => d.spec.template.spec.containers.map((container) => ({ owner: d.metadata.name, container })));
}

/** The keys of secret.example.yaml: the Secret every overlay reads and nobody commits filled in. */
function exampleSecret(): K8sObject & { stringData: Record<string, string> } {
  return parseYaml(readFileSync(path.join(K8S, 'secret.example.yaml'), 'utf8')) as K8sObject & { stringData: Record<string, string> };
}

/** Every TypeScript source the CLI and workers run: a setting they read is named in one of these. */
function sourceText(): string {
  const texts: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith('.ts')) texts.push(readFileSync(full, 'utf8'));
    }
  };
  for (const dir of ['activities', 'cli', 'infra', 'pipelines']) walk(path.join(ROOT, dir));
  return texts.join('\n');
}

test('there are overlays for a self-hosted Temporal and for Temporal Cloud', () => {
  expect(OVERLAYS).toEqual(expect.arrayContaining(['self-hosted', 'temporal-cloud']));
});

describe.each(OVERLAYS)('overlay %s', (overlay) => {
  test('every rendered object is valid against the Kubernetes schemas', () => {
    const objects = objectsOf(overlay);
    expect(objects.map((o) => o.kind).sort()).toEqual(
      ['ConfigMap', 'Deployment', 'Deployment', 'Deployment', 'HorizontalPodAutoscaler', 'Namespace', 'Service', 'ServiceAccount'].sort(),
    );
    for (const object of objects) expect(() => validateObject(object)).not.toThrow();
  });

  test('the validator rejects what the API server would', () => {
    const valid = deployment(overlay, 'worker-cpu');
    const broken = (change: (d: Deployment) => void): Deployment => {
      const copy = structuredClone(valid);
      change(copy);
      return copy;
    };
    expect(() => validateObject(broken((d) => Object.assign(d.spec, { replicas: 'two' })))).toThrow(/spec\/replicas must be integer/);
    expect(() => validateObject(broken((d) => delete (d.spec as Partial<Deployment['spec']>).selector))).toThrow(/spec must have required property '?selector'?/);
    expect(() => validateObject(broken((d) => Object.assign(d.spec.template.spec.containers[0], { imagePullPolicy: 'Sometimes' })))).toThrow(/imagePullPolicy/);
    expect(() => validateObject(broken((d) => Object.assign(d, { kind: 'Deploymnet' })))).toThrow(/has no kind "Deploymnet"/);
    expect(() => validateObject(broken((d) => Object.assign(d, { apiVersion: 'apps/v2' })))).toThrow(/no schemas for apiVersion "apps\/v2"/);
  });

  test('every object lives in the tempered namespace, and every pod runs as a non-root user under the tempered ServiceAccount', () => {
    const objects = objectsOf(overlay);
    for (const o of objects.filter((o) => o.kind !== 'Namespace')) expect(o.metadata.namespace).toBe('tempered');
    const accounts = objects.filter((o) => o.kind === 'ServiceAccount').map((o) => o.metadata.name);
    for (const d of objects.filter((o): o is Deployment => o.kind === 'Deployment')) {
      const pod = d.spec.template.spec;
      expect(accounts).toContain(pod.serviceAccountName);
      expect(pod.securityContext).toMatchObject({ runAsNonRoot: true });
      expect(pod.securityContext?.runAsUser).toBeGreaterThan(0);
      expect(d.spec.template.metadata.labels).toMatchObject(d.spec.selector.matchLabels);
    }
  });

  test('the GPU pool asks for one GPU per pod, tolerates the GPU taint, and runs one stage per GPU', () => {
    const gpu = deployment(overlay, 'worker-gpu');
    const pod = gpu.spec.template.spec;
    const [worker] = pod.containers;
    expect(worker.args).toEqual(['worker', '--queue', 'gpu']);
    const limit = Number(worker.resources?.limits?.['nvidia.com/gpu']);
    expect(limit).toBe(1);
    // The worker polls one task per device it is given (infra/worker.ts): its count must be the pod's GPUs.
    expect(worker.env?.find((e) => e.name === 'TEMPERED_GPUS')?.value).toBe(String(limit));
    expect(pod.tolerations).toContainEqual(expect.objectContaining({ key: 'nvidia.com/gpu', effect: 'NoSchedule' }));
    expect(Object.keys(pod.nodeSelector ?? {})).not.toHaveLength(0);
    // No other pod takes a GPU.
    for (const d of ['worker-cpu', 'server'].map((c) => deployment(overlay, c))) {
      expect(d.spec.template.spec.containers[0].resources?.limits?.['nvidia.com/gpu']).toBeUndefined();
    }
    expect(deployment(overlay, 'worker-cpu').spec.template.spec.containers[0].args).toEqual(['worker', '--queue', 'cpu']);
  });

  test('tfjs memory budgets fit inside each worker container', () => {
    for (const component of ['worker-cpu', 'worker-gpu']) {
      const [worker] = deployment(overlay, component).spec.template.spec.containers;
      const budget = Number(worker.env?.find((e) => e.name === 'TEMPERED_MEMORY_LIMIT_BYTES')?.value);
      const limit = String(worker.resources?.limits?.memory);
      expect(limit).toMatch(/^\d+Gi$/);
      expect(budget).toBeGreaterThan(0);
      expect(budget).toBeLessThan(Number.parseInt(limit, 10) * 2 ** 30);
    }
  });

  test('the server has a Service, an HPA on its Deployment, and probes on /healthz', () => {
    const objects = objectsOf(overlay);
    const server = deployment(overlay, 'server');
    const [container] = server.spec.template.spec.containers;
    expect(container.args?.slice(0, 2)).toEqual(['serve', expect.stringMatching(/^[a-z0-9-]+@champion$/)]);
    const port = container.ports?.find((p) => p.name === 'http');
    expect(port).toBeDefined();
    expect(container.args).toEqual(expect.arrayContaining(['--port', String(port!.containerPort), '--host', '0.0.0.0']));
    for (const probe of [container.readinessProbe, container.livenessProbe, container.startupProbe]) {
      expect(probe?.httpGet).toEqual({ path: '/healthz', port: 'http' });
    }
    const service = objects.find((o) => o.kind === 'Service') as K8sObject & { spec: { selector: Record<string, string>; ports: { targetPort: string }[] } };
    expect(server.spec.template.metadata.labels).toMatchObject(service.spec.selector);
    expect(service.spec.ports.map((p) => p.targetPort)).toEqual(['http']);
    const hpa = objects.find((o) => o.kind === 'HorizontalPodAutoscaler') as K8sObject & {
      spec: { scaleTargetRef: { apiVersion: string; kind: string; name: string }; minReplicas: number; maxReplicas: number; metrics: { resource?: { name: string } }[] };
    };
    expect(hpa.apiVersion).toBe('autoscaling/v2');
    expect(hpa.spec.scaleTargetRef).toEqual({ apiVersion: server.apiVersion, kind: 'Deployment', name: server.metadata.name });
    expect(hpa.spec.maxReplicas).toBeGreaterThan(hpa.spec.minReplicas);
    // CPU utilization is measured against the request: without one the HPA cannot scale.
    expect(hpa.spec.metrics.map((m) => m.resource?.name)).toContain('cpu');
    expect(container.resources?.requests?.cpu).toBeDefined();
  });

  test('no Secret is rendered; every setting read from a ConfigMap or the Secret exists there, and is one Tempered reads', () => {
    const objects = objectsOf(overlay);
    expect(objects.filter((o) => o.kind === 'Secret')).toEqual([]);
    const configMaps = new Map(objects.filter((o) => o.kind === 'ConfigMap').map((o) => [o.metadata.name, (o as K8sObject & { data: Record<string, string> }).data]));
    const secretKeys = Object.keys(exampleSecret().stringData);
    const settings = new Set<string>();
    for (const { owner, container } of containersOf(objects)) {
      for (const source of container.envFrom ?? []) {
        expect(source.secretRef).toBeUndefined(); // secrets are named key by key, so the example lists them all
        const data = configMaps.get(source.configMapRef!.name);
        expect({ owner, configMap: source.configMapRef!.name, found: data !== undefined }).toEqual({ owner, configMap: source.configMapRef!.name, found: true });
        for (const key of Object.keys(data!)) settings.add(key);
      }
      for (const variable of container.env ?? []) {
        settings.add(variable.name);
        const secretRef = variable.valueFrom?.secretKeyRef;
        if (secretRef) {
          expect(secretRef.name).toBe(SECRET_NAME);
          expect(secretKeys).toContain(secretRef.key);
        }
        const configMapRef = variable.valueFrom?.configMapKeyRef;
        if (configMapRef) expect(Object.keys(configMaps.get(configMapRef.name) ?? {})).toContain(configMapRef.key);
      }
    }
    const source = sourceText();
    for (const name of settings) expect({ name, readByTempered: source.includes(name) }).toEqual({ name, readByTempered: true });
    const config = [...configMaps.values()][0];
    expect(config.TEMPORAL_ADDRESS).toMatch(/^[a-z0-9.-]+:\d+$/);
    expect(config.TEMPERED_STORE).toMatch(/^s3:\/\/[a-z0-9.-]+/);
  });

  test('every container runs an image built from a Dockerfile in deploy/images, with that image\'s command', () => {
    for (const { owner, container } of containersOf(objectsOf(overlay))) {
      const match = /(?:^|\/)tempered\/([a-z0-9-]+):[\w.-]+$/.exec(container.image);
      expect({ owner, image: container.image, matches: match !== null }).toEqual({ owner, image: container.image, matches: true });
      const dockerfile = readDockerfile(`${match![1]}.Dockerfile`);
      expect(dockerfile.title).toBe(`tempered/${match![1]}`);
      expect(container.args?.[0]).toBe(dockerfile.cmd[0]);
    }
  });
});

test('self-hosted talks to the Helm chart\'s frontend; temporal-cloud gives the workers the API key', () => {
  const configOf = (overlay: string) => (objectsOf(overlay).find((o) => o.kind === 'ConfigMap') as K8sObject & { data: Record<string, string> }).data;
  expect(configOf('self-hosted').TEMPORAL_ADDRESS).toBe('temporal-frontend.temporal.svc.cluster.local:7233');
  expect(configOf('temporal-cloud').TEMPORAL_ADDRESS).toMatch(/\.temporal\.io:7233$/);
  for (const component of ['worker-cpu', 'worker-gpu']) {
    const env = deployment('temporal-cloud', component).spec.template.spec.containers[0].env ?? [];
    expect(env).toContainEqual({ name: 'TEMPORAL_API_KEY', valueFrom: { secretKeyRef: { name: SECRET_NAME, key: 'TEMPORAL_API_KEY' } } });
    // The patch adds to the base's settings rather than replacing them.
    expect(env.map((e) => e.name)).toEqual(expect.arrayContaining(['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'TEMPERED_MEMORY_LIMIT_BYTES']));
  }
});

test('the committed Secret is an example: placeholders only, valid, and every key is read by some overlay', () => {
  const secret = exampleSecret();
  expect(() => validateObject(secret)).not.toThrow();
  expect(secret.metadata.name).toBe(SECRET_NAME);
  expect((secret as K8sObject & { data?: unknown }).data).toBeUndefined();
  for (const [key, value] of Object.entries(secret.stringData)) expect({ key, placeholder: /^<[^>]+>$/.test(value) }).toEqual({ key, placeholder: true });
  const referenced = new Set(
    [...rendered.values()].flatMap((objects) => containersOf(objects).flatMap(({ container }) => (container.env ?? []).map((e) => e.valueFrom?.secretKeyRef?.key))),
  );
  for (const key of Object.keys(secret.stringData)) expect(referenced).toContain(key);
  // No other YAML under deploy/ is a Secret.
  const yamlFiles = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? yamlFiles(path.join(dir, e.name)) : /\.ya?ml$/.test(e.name) ? [path.join(dir, e.name)] : []));
  const secrets = yamlFiles(K8S).filter((file) => parseObjects(readFileSync(file, 'utf8'), file).some((o) => o?.kind === 'Secret'));
  expect(secrets.map((f) => path.relative(K8S, f))).toEqual(['secret.example.yaml']);
});

/** What the checks need of a Dockerfile: its stages, final image's title label, user, entrypoint and command. */
interface ParsedDockerfile {
  file: string;
  stages: { name: string | null; image: string; instructions: Instruction[] }[];
  title: string | undefined;
  user: string | undefined;
  entrypoint: string[];
  cmd: string[];
}

function readDockerfile(name: string): ParsedDockerfile {
  const file = path.join(IMAGES, name);
  const dockerfile = DockerfileParser.parse(readFileSync(file, 'utf8'));
  const defaults = new Map(dockerfile.getInitialARGs().map((arg) => [arg.getProperty()!.getName(), arg.getProperty()!.getValue() ?? '']));
  const stages: ParsedDockerfile['stages'] = [];
  for (const instruction of dockerfile.getInstructions()) {
    if (instruction.getKeyword() === 'FROM') {
      const from = dockerfile.getFROMs().find((f) => f.getRange().start.line === instruction.getRange().start.line)!;
      const image = (from.getImage() ?? '').replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a: string | undefined, b: string | undefined) => defaults.get((a ?? b)!) ?? '');
      stages.push({ name: from.getBuildStage(), image, instructions: [] });
    } else if (stages.length > 0) stages[stages.length - 1].instructions.push(instruction);
  }
  const final = stages[stages.length - 1].instructions;
  const last = (keyword: string) => final.filter((i) => i.getKeyword() === keyword).pop();
  const json = (keyword: string) => {
    const instruction = last(keyword);
    return instruction instanceof JSONInstruction ? instruction.getJSONStrings().map((s) => s.getJSONValue()) : [];
  };
  const labels = final.filter((i): i is Label => i instanceof Label).flatMap((l) => l.getProperties());
  return {
    file,
    stages,
    title: labels.find((p) => p.getName() === 'org.opencontainers.image.title')?.getValue()?.replace(/^"|"$/g, ''),
    user: last('USER')?.getArgumentsContent() ?? undefined,
    entrypoint: json('ENTRYPOINT'),
    cmd: json('CMD'),
  };
}

describe('Dockerfiles (parsed, not built: that needs a Docker engine)', () => {
  const names = readdirSync(IMAGES).filter((f) => f.endsWith('.Dockerfile')).sort();
  const dockerignore = readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim());

  test('there is one per image: the cpu worker, the gpu worker and the server', () => {
    expect(names).toEqual(['server.Dockerfile', 'worker-cpu.Dockerfile', 'worker-gpu.Dockerfile']);
  });

  test.each(names)('%s: multi-stage, npm ci and tsc in the build stage, non-root, and its COPY sources exist and are sent', (name) => {
    const parsed = readDockerfile(name);
    expect(parsed.title).toBe(`tempered/${name.replace(/\.Dockerfile$/, '')}`);
    const build = parsed.stages.find((s) => s.name === 'build');
    expect(build).toBeDefined();
    const runs = build!.instructions.filter((i) => i.getKeyword() === 'RUN').map((i) => i.getArgumentsContent() ?? '');
    expect(runs.some((r) => /\bnpm ci\b/.test(r))).toBe(true);
    expect(runs.some((r) => /typescript\/bin\/tsc -p tsconfig\.json/.test(r) && /npm prune --omit=dev/.test(r))).toBe(true);
    expect(parsed.user).toMatch(/^[1-9]\d*(:[1-9]\d*)?$/); // numeric, so the kubelet can enforce runAsNonRoot
    const copies = parsed.stages.flatMap((s) => s.instructions).filter((i): i is Copy => i instanceof Copy);
    expect(copies.length).toBeGreaterThan(0);
    for (const copy of copies) {
      const from = copy.getFromFlag()?.getValue() ?? undefined;
      const sources = copy.getArguments().map((a) => a.getValue()).filter((a) => !a.startsWith('--')).slice(0, -1);
      for (const source of sources) {
        if (from === undefined) {
          // From the build context: it exists, and .dockerignore (which excludes everything else) lets it through.
          expect({ source, exists: existsSync(path.join(ROOT, source)) }).toEqual({ source, exists: true });
          const top = source.split('/')[0];
          expect({ source, sent: dockerignore.includes(`!${top}`) || dockerignore.includes(`!${top}/`) }).toEqual({ source, sent: true });
        } else if (from === 'build') {
          // From the build stage (WORKDIR /src): package files, node_modules, or tsc's output of a compiled folder.
          const inSrc = source.replace(/^\/src\//, '');
          const [top, sub] = inSrc.split('/');
          if (top === 'dist') {
            const include = (JSON.parse(readFileSync(path.join(ROOT, 'tsconfig.json'), 'utf8')) as { include: string[] }).include;
            expect(include).toContain(sub);
            expect(build!.instructions.some((i) => i.getKeyword() === 'COPY' && i.getArguments()[0]?.getValue() === sub)).toBe(true);
          } else expect(['package.json', 'node_modules']).toContain(top);
        } else {
          expect(parsed.stages.map((s) => s.name)).toContain(from);
        }
      }
    }
    expect(parsed.entrypoint).toEqual(['/usr/bin/tini', '--', 'tempered']);
  });

  test('the gpu worker runs on a CUDA image with the pinned Python env built by the worker\'s own builder', () => {
    const gpu = readDockerfile('worker-gpu.Dockerfile');
    expect(gpu.stages[gpu.stages.length - 1].image).toMatch(/^nvidia\/cuda:[\d.]+-(base|runtime)-ubuntu\d+\.\d+$/);
    const runs = gpu.stages[gpu.stages.length - 1].instructions.filter((i) => i.getKeyword() === 'RUN').map((i) => i.getArgumentsContent() ?? '');
    expect(runs.some((r) => r.includes("require('/app/dist/infra/python-env.js').ensurePythonEnv()"))).toBe(true);
    // That builder is what installs the lock with hashes.
    const builder = readFileSync(path.join(ROOT, 'infra/python-env.ts'), 'utf8');
    expect(builder).toContain("'--require-hashes'");
    expect(builder).toMatch(/^import .* from 'node:/m);
    expect(builder.match(/^import .* from '(.*)';$/gm)!.every((line) => /from 'node:/.test(line))).toBe(true); // runs alone in its layer
  });

  test.each(names)('%s: its command is a real tempered command with real options', async (name) => {
    const { cmd } = readDockerfile(name);
    const help = await tempered(['help', cmd[0]]);
    // An unknown command exits 2; the command's own help starts with its usage line.
    expect({ command: cmd[0], code: help.code, stderr: help.stderr }).toEqual({ command: cmd[0], code: 0, stderr: '' });
    expect(help.stdout).toMatch(new RegExp(`^Usage: tempered ${cmd[0]} `));
    for (const option of cmd.filter((a) => a.startsWith('--'))) expect(help.stdout).toContain(option);
    if (cmd[0] === 'worker') expect(help.stdout).toContain(cmd[cmd.indexOf('--queue') + 1]);
  });
});
