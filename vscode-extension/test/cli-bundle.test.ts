import t from 'tap';
import { cliProblem, describeCliLookup, findCli, type CliLookupFs } from '../src/cli-bundle.js';

const WANT = '0.1.0';

/** Files that exist, with their text, and symlinks to files (from -> to). */
function fakeFs(files: Readonly<Record<string, string>>, links: Readonly<Record<string, string>> = {}): CliLookupFs {
  return {
    realpath: (p) => (links[p] !== undefined ? links[p] : p in files ? p : undefined),
    isFile: (p) => p in files,
    readText: (p) => files[p],
  };
}

/** The released layout in `dir` (stage-cli.sh): the shim in bin/, the bundle and package.json above it. */
function cli(dir: string, version: string | undefined): Record<string, string> {
  return {
    [`${dir}/bin/kubectl-telepresence`]: '#!/bin/sh\n',
    [`${dir}/kubectl-telepresence.js`]: '#!/usr/bin/env node\n',
    ...(version !== undefined ? { [`${dir}/package.json`]: JSON.stringify({ type: 'module', version }) } : {}),
  };
}

const BUILD = '/opt/tp/dist';
const NPM = '/home/me/.npm-global/lib/node_modules/telepresence-ts';
const NPM_BIN = '/home/me/.npm-global/bin';
const KREW_BIN = '/home/me/.krew/bin';
const krewStore = (version: string): string => `/home/me/.krew/store/telepresence/v${version}`;
/** What `npm install -g` links into the prefix's bin, and what krew links into its own. */
const npmLink = { [`${NPM_BIN}/kubectl-telepresence`]: `${NPM}/bin/kubectl-telepresence` };
const krewLink = (version: string) => ({ [`${KREW_BIN}/kubectl-telepresence`]: `${krewStore(version)}/bin/kubectl-telepresence` });

interface Case {
  readonly name: string;
  readonly path: string;
  readonly setting?: string;
  readonly fs: CliLookupFs;
  /** The path the CLI was found by and the bundle it runs; undefined: none found. */
  readonly want: { path: string; bundle: string } | undefined;
  readonly skipped?: readonly string[];
  /** What the reason and the fix must say when none was found. */
  readonly reason?: RegExp;
  readonly fix?: RegExp;
}

const cases: readonly Case[] = [
  {
    name: 'a build: the shim in dist/bin on PATH',
    path: `/usr/bin:${BUILD}/bin`,
    fs: fakeFs(cli(BUILD, WANT)),
    want: { path: `${BUILD}/bin/kubectl-telepresence`, bundle: `${BUILD}/kubectl-telepresence.js` },
  },
  {
    name: "npm install -g: the prefix's bin links into lib/node_modules/telepresence-ts",
    path: `/usr/bin:${NPM_BIN}`,
    fs: fakeFs(cli(NPM, WANT), npmLink),
    want: { path: `${NPM_BIN}/kubectl-telepresence`, bundle: `${NPM}/kubectl-telepresence.js` },
  },
  {
    name: "krew: ~/.krew/bin links into the store's folder of the version",
    path: `${KREW_BIN}:/usr/bin`,
    fs: fakeFs(cli(krewStore(WANT), WANT), krewLink(WANT)),
    want: { path: `${KREW_BIN}/kubectl-telepresence`, bundle: `${krewStore(WANT)}/kubectl-telepresence.js` },
  },
  {
    name: 'a shim linked from ~/bin, followed back to the build',
    path: '/home/me/bin:/usr/bin',
    fs: fakeFs(cli(BUILD, WANT), { '/home/me/bin/kubectl-telepresence': `${BUILD}/bin/kubectl-telepresence` }),
    want: { path: '/home/me/bin/kubectl-telepresence', bundle: `${BUILD}/kubectl-telepresence.js` },
  },
  {
    name: 'another version first on PATH is skipped for a later one of this version',
    path: `${KREW_BIN}:/usr/bin:${NPM_BIN}`,
    fs: fakeFs({ ...cli(krewStore('0.0.9'), '0.0.9'), ...cli(NPM, WANT) }, { ...krewLink('0.0.9'), ...npmLink }),
    want: { path: `${NPM_BIN}/kubectl-telepresence`, bundle: `${NPM}/kubectl-telepresence.js` },
    skipped: [`${KREW_BIN}/kubectl-telepresence`],
  },
  {
    name: 'only another version on PATH: none, naming it and the upgrade',
    path: `${KREW_BIN}:/usr/bin`,
    fs: fakeFs(cli(krewStore('0.2.0'), '0.2.0'), krewLink('0.2.0')),
    want: undefined,
    skipped: [`${KREW_BIN}/kubectl-telepresence`],
    reason: /^the kubectl-telepresence on PATH is v0\.2\.0 \(\/home\/me\/\.krew\/bin\/kubectl-telepresence\), and this extension is v0\.1\.0$/,
    fix: /npm install -g telepresence-ts@0\.1\.0 or kubectl krew upgrade telepresence \(or name one in telepresence\.cliPath\)/,
  },
  {
    name: 'two of other versions: both named',
    path: `${KREW_BIN}:${NPM_BIN}`,
    fs: fakeFs({ ...cli(krewStore('0.0.9'), '0.0.9'), ...cli(NPM, '0.2.0') }, { ...krewLink('0.0.9'), ...npmLink }),
    want: undefined,
    skipped: [`${KREW_BIN}/kubectl-telepresence`, `${NPM_BIN}/kubectl-telepresence`],
    reason: /^the kubectl-telepresence CLIs on PATH are v0\.0\.9 \(\/home\/me\/\.krew\/bin\/kubectl-telepresence\), v0\.2\.0 \(\/home\/me\/\.npm-global\/bin\/kubectl-telepresence\)/,
  },
  {
    name: 'a CLI without a version beside its bundle (a build before versions were written) is skipped',
    path: `${BUILD}/bin`,
    fs: fakeFs(cli(BUILD, undefined)),
    want: undefined,
    skipped: [`${BUILD}/bin/kubectl-telepresence`],
    reason: /kubectl-telepresence on PATH is of unknown version/,
  },
  {
    name: 'the same CLI twice on PATH counts once',
    path: `${NPM_BIN}:${NPM}/bin`,
    fs: fakeFs(cli(NPM, '0.0.9'), npmLink),
    want: undefined,
    skipped: [`${NPM_BIN}/kubectl-telepresence`],
  },
  {
    name: 'no CLI on PATH: none, with the install commands',
    path: '/usr/bin:/bin',
    fs: fakeFs(cli(BUILD, WANT)),
    want: undefined,
    reason: /^there is no kubectl-telepresence on PATH$/,
    fix: /npm install -g telepresence-ts@0\.1\.0 or kubectl krew install telepresence/,
  },
  { name: 'a shim without its bundle beside it', path: `${BUILD}/bin`, fs: fakeFs({ [`${BUILD}/bin/kubectl-telepresence`]: '' }), want: undefined },
  {
    name: 'relative and empty entries are skipped (the daemon runs in /)',
    path: ':dist/bin:',
    fs: fakeFs({ 'dist/bin/kubectl-telepresence': '', 'dist/kubectl-telepresence.js': '', 'dist/package.json': `{"version":"${WANT}"}` }),
    want: undefined,
  },
  {
    name: 'telepresence.cliPath wins over PATH',
    path: NPM_BIN,
    setting: `${KREW_BIN}/kubectl-telepresence`,
    fs: fakeFs({ ...cli(NPM, WANT), ...cli(krewStore(WANT), WANT) }, { ...npmLink, ...krewLink(WANT) }),
    want: { path: `${KREW_BIN}/kubectl-telepresence`, bundle: `${krewStore(WANT)}/kubectl-telepresence.js` },
  },
  {
    name: 'telepresence.cliPath may name the bundle itself',
    path: '',
    setting: `${BUILD}/kubectl-telepresence.js`,
    fs: fakeFs(cli(BUILD, WANT)),
    want: { path: `${BUILD}/kubectl-telepresence.js`, bundle: `${BUILD}/kubectl-telepresence.js` },
  },
  {
    name: 'telepresence.cliPath of another version is refused, though PATH has one of this version',
    path: NPM_BIN,
    setting: `${KREW_BIN}/kubectl-telepresence`,
    fs: fakeFs({ ...cli(NPM, WANT), ...cli(krewStore('0.0.9'), '0.0.9') }, { ...npmLink, ...krewLink('0.0.9') }),
    want: undefined,
    skipped: [`${KREW_BIN}/kubectl-telepresence`],
    reason: /^telepresence\.cliPath names \/home\/me\/\.krew\/bin\/kubectl-telepresence, the CLI v0\.0\.9, and this extension is v0\.1\.0$/,
    fix: /install the CLI v0\.1\.0 \(npm install -g telepresence-ts@0\.1\.0, or kubectl krew upgrade telepresence\) and point telepresence\.cliPath at its kubectl-telepresence, or clear telepresence\.cliPath/,
  },
  {
    name: 'telepresence.cliPath naming nothing is refused',
    path: NPM_BIN,
    setting: '/opt/nowhere/kubectl-telepresence',
    fs: fakeFs(cli(NPM, WANT), npmLink),
    want: undefined,
    reason: /^telepresence\.cliPath names \/opt\/nowhere\/kubectl-telepresence, where there is no file$/,
  },
  {
    name: 'telepresence.cliPath naming something else is refused',
    path: '',
    setting: '/usr/bin/kubectl',
    fs: fakeFs({ '/usr/bin/kubectl': '' }),
    want: undefined,
    reason: /^telepresence\.cliPath names \/usr\/bin\/kubectl, which is not a kubectl-telepresence CLI/,
  },
  {
    name: 'a relative telepresence.cliPath is refused',
    path: '',
    setting: 'dist/bin/kubectl-telepresence',
    fs: fakeFs({}),
    want: undefined,
    reason: /^telepresence\.cliPath is dist\/bin\/kubectl-telepresence, which is not an absolute path$/,
  },
  {
    name: 'a blank telepresence.cliPath means PATH',
    path: `${BUILD}/bin`,
    setting: '  ',
    fs: fakeFs(cli(BUILD, WANT)),
    want: { path: `${BUILD}/bin/kubectl-telepresence`, bundle: `${BUILD}/kubectl-telepresence.js` },
  },
];
for (const c of cases) {
  t.test(c.name, (t) => {
    const got = findCli({ pathEnv: c.path, setting: c.setting, version: WANT }, c.fs);
    t.same(got.found === undefined ? undefined : { path: got.found.path, bundle: got.found.bundle }, c.want);
    if (got.found !== undefined) t.equal(got.found.version, WANT);
    t.same(
      got.skipped.map((s) => s.path),
      c.skipped ?? [],
      'the CLIs passed over on the way',
    );
    const problem = cliProblem(got);
    t.equal(problem === undefined, c.want !== undefined, 'a problem exactly when none was found');
    if (c.reason !== undefined) t.match(problem?.reason, c.reason);
    if (c.fix !== undefined) t.match(problem?.fix, c.fix);
    t.end();
  });
}

t.test('the log line names the CLI found, its version and what was skipped', (t) => {
  const got = findCli(
    { pathEnv: `${KREW_BIN}:${NPM_BIN}`, version: WANT },
    fakeFs({ ...cli(krewStore('0.0.9'), '0.0.9'), ...cli(NPM, WANT) }, { ...krewLink('0.0.9'), ...npmLink }),
  );
  t.equal(
    describeCliLookup(got),
    `outbound access runs the CLI v0.1.0 at ${NPM_BIN}/kubectl-telepresence (${NPM}/kubectl-telepresence.js); skipped ${KREW_BIN}/kubectl-telepresence (v0.0.9)`,
  );
  t.end();
});

t.test('the log line without a CLI says intercepts only, why and the fix', (t) => {
  const got = findCli({ pathEnv: KREW_BIN, version: WANT }, fakeFs(cli(krewStore('0.0.9'), '0.0.9'), krewLink('0.0.9')));
  t.match(describeCliLookup(got), /^no outbound access \(intercepts only\): the kubectl-telepresence on PATH is v0\.0\.9 .*\. Fix: install the CLI v0\.1\.0: npm install -g telepresence-ts@0\.1\.0 or kubectl krew upgrade telepresence/);
  t.end();
});
