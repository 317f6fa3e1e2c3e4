import t from 'tap';
import { findCliBundle, type CliLookupFs } from '../src/cli-bundle.js';

/** Files that exist, and symlinks (from -> to). */
function fakeFs(files: readonly string[], links: Readonly<Record<string, string>> = {}): CliLookupFs {
  return {
    realpath: (p) => (links[p] !== undefined ? links[p] : files.includes(p) ? p : undefined),
    isFile: (p) => files.includes(p),
  };
}

const BUILD = ['/opt/tp/dist/bin/kubectl-telepresence', '/opt/tp/dist/kubectl-telepresence.js'];

const cases = [
  { name: 'the shim in dist/bin on PATH', path: '/usr/bin:/opt/tp/dist/bin', fs: fakeFs(BUILD), want: '/opt/tp/dist/kubectl-telepresence.js' },
  {
    name: 'a shim linked from ~/bin, followed back to the build',
    path: '/home/me/bin:/usr/bin',
    fs: fakeFs(BUILD, { '/home/me/bin/kubectl-telepresence': '/opt/tp/dist/bin/kubectl-telepresence' }),
    want: '/opt/tp/dist/kubectl-telepresence.js',
  },
  { name: 'no CLI on PATH', path: '/usr/bin:/bin', fs: fakeFs(BUILD), want: undefined },
  { name: 'a shim without its bundle beside it', path: '/opt/tp/dist/bin', fs: fakeFs(['/opt/tp/dist/bin/kubectl-telepresence']), want: undefined },
  { name: 'relative and empty entries are skipped (the daemon runs in /)', path: ':dist/bin:', fs: fakeFs(['dist/bin/kubectl-telepresence', 'dist/kubectl-telepresence.js']), want: undefined },
] as const;
for (const c of cases) {
  t.test(c.name, (t) => {
    t.equal(findCliBundle(c.path, c.fs), c.want);
    t.end();
  });
}
