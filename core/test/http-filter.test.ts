import t from 'tap';
import {
  compareSpecificity,
  describeHttpFilter,
  httpFilterKey,
  httpFilterProblem,
  isPersonal,
  methodProblem,
  pathPrefixProblem,
  requestMatches,
  requestPath,
  type HttpFilter,
  type HttpRequestHead,
} from '../src/http-filter.js';

const filter = (headers: Array<[string, string]>, httpPathPrefix = '', httpMethods: string[] = []): HttpFilter => ({
  headers: headers.map(([name, value]) => ({ name, value })),
  httpPathPrefix,
  httpMethods,
});
const req = (method: string, target: string, ...headers: Array<[string, string]>): HttpRequestHead => ({ method, target, headers });

t.test('isPersonal: headers, a path prefix or methods make an intercept personal', (t) => {
  const cases: Array<{ name: string; filter: HttpFilter | undefined; want: boolean }> = [
    { name: 'no spec', filter: undefined, want: false },
    { name: 'nothing: global', filter: filter([]), want: false },
    { name: 'fields absent: global', filter: { headers: [] }, want: false },
    { name: 'a header', filter: filter([['x-user', 'a']]), want: true },
    { name: 'a path prefix alone', filter: filter([], '/api/'), want: true },
    { name: 'methods alone', filter: filter([], '', ['GET']), want: true },
  ];
  for (const c of cases) t.equal(isPersonal(c.filter), c.want, c.name);
  t.end();
});

t.test('requestPath: the path as sent, without the query', (t) => {
  const cases: Array<[string, string]> = [
    ['/api/users', '/api/users'],
    ['/api/users?x=/admin', '/api/users'],
    ['/api?', '/api'],
    ['/', '/'],
    ['//api/x', '//api/x'],
    ['/%61pi/x', '/%61pi/x'],
    ['/a/../api/', '/a/../api/'],
    ['http://web.shop:8080/api/x?y=1', '/api/x'],
    ['HTTPS://web/api', '/api'],
    ['http://web', '/'],
    ['http://web?q=/api', '/'],
    ['http://user@web:80//api', '//api'],
    ['web.shop:443', 'web.shop:443'],
    ['*', '*'],
  ];
  for (const [target, want] of cases) t.equal(requestPath(target), want, target);
  t.end();
});

t.test('requestMatches: all headers, the path prefix and one of the methods', (t) => {
  const cases: Array<{ name: string; filter: HttpFilter; request: HttpRequestHead; want: boolean }> = [
    { name: 'global filter takes anything', filter: filter([]), request: req('GET', '/'), want: true },
    { name: 'header name in any case', filter: filter([['X-User', 'a']]), request: req('GET', '/', ['x-user', 'a']), want: true },
    { name: 'header value exactly', filter: filter([['x-user', 'a']]), request: req('GET', '/', ['x-user', 'A']), want: false },
    { name: 'a repeated header: either line', filter: filter([['x-user', 'b']]), request: req('GET', '/', ['x-user', 'a'], ['X-USER', 'b']), want: true },
    { name: 'every header needed', filter: filter([['x-user', 'a'], ['x-team', 't']]), request: req('GET', '/', ['x-user', 'a']), want: false },
    { name: 'prefix matches', filter: filter([], '/api/'), request: req('GET', '/api/users'), want: true },
    { name: 'prefix is the whole path', filter: filter([], '/api/'), request: req('GET', '/api/'), want: true },
    { name: 'prefix longer than the path', filter: filter([], '/api/'), request: req('GET', '/api'), want: false },
    { name: 'a query is not the path', filter: filter([], '/api/'), request: req('GET', '/x?next=/api/'), want: false },
    { name: 'the path before a query', filter: filter([], '/api/'), request: req('GET', '/api/u?a=b'), want: true },
    { name: 'a prefix is not a segment: /apiv2 starts with /api', filter: filter([], '/api'), request: req('GET', '/apiv2/x'), want: true },
    { name: 'absolute-form target: its path', filter: filter([], '/api/'), request: req('GET', 'http://web:80/api/x?y'), want: true },
    { name: 'absolute-form target: its host is no path', filter: filter([], '/web'), request: req('GET', 'http://web/'), want: false },
    { name: 'double slash: raw, not normalised', filter: filter([], '/api/'), request: req('GET', '//api/x'), want: false },
    { name: 'percent-encoded: raw, not decoded', filter: filter([], '/api/'), request: req('GET', '/%61pi/x'), want: false },
    { name: 'percent-encoded prefix matches the same encoding', filter: filter([], '/a%20b/'), request: req('GET', '/a%20b/c'), want: true },
    { name: 'case-sensitive path', filter: filter([], '/api/'), request: req('GET', '/API/x'), want: false },
    { name: 'CONNECT target never matches a prefix', filter: filter([], '/'), request: req('CONNECT', 'web:443'), want: false },
    { name: 'asterisk-form never matches a prefix', filter: filter([], '/'), request: req('OPTIONS', '*'), want: false },
    { name: 'method in the list', filter: filter([], '', ['GET', 'POST']), request: req('POST', '/'), want: true },
    { name: 'method not in the list', filter: filter([], '', ['GET', 'POST']), request: req('PUT', '/'), want: false },
    { name: 'methods compare exactly (case-sensitive)', filter: filter([], '', ['GET']), request: req('get', '/'), want: false },
    { name: 'all three match', filter: filter([['x-user', 'a']], '/api/', ['GET']), request: req('GET', '/api/x', ['x-user', 'a']), want: true },
    { name: 'all three but the method', filter: filter([['x-user', 'a']], '/api/', ['GET']), request: req('POST', '/api/x', ['x-user', 'a']), want: false },
    { name: 'all three but the header', filter: filter([['x-user', 'a']], '/api/', ['GET']), request: req('GET', '/api/x'), want: false },
    { name: 'all three but the path', filter: filter([['x-user', 'a']], '/api/', ['GET']), request: req('GET', '/web/x', ['x-user', 'a']), want: false },
  ];
  for (const c of cases) t.equal(requestMatches(c.filter, c.request), c.want, c.name);
  t.end();
});

t.test('pathPrefixProblem and methodProblem name what is wrong', (t) => {
  t.equal(pathPrefixProblem('/api/'), undefined);
  t.equal(pathPrefixProblem('/'), undefined);
  t.equal(pathPrefixProblem('/a%20b'), undefined);
  t.match(pathPrefixProblem('api/'), /does not start with "\/"/);
  t.match(pathPrefixProblem(''), /does not start with "\/"/);
  t.match(pathPrefixProblem('/a b'), /space/);
  t.match(pathPrefixProblem('/a\tb'), /space/);
  t.match(pathPrefixProblem('/a?b=1'), /"\?"/);
  t.match(pathPrefixProblem('/a#top'), /"#"/);
  t.match(pathPrefixProblem('/é'), /non-ASCII/);
  t.equal(methodProblem('GET'), undefined);
  t.equal(methodProblem('M-SEARCH'), undefined);
  t.match(methodProblem(''), /empty/);
  t.match(methodProblem('GE T'), /not an HTTP method/);
  t.match(methodProblem('GET/1'), /not an HTTP method/);
  t.end();
});

t.test('httpFilterProblem: a spec the manager refuses', (t) => {
  t.equal(httpFilterProblem(filter([['x', 'y']], '/api', ['GET'])), undefined);
  t.equal(httpFilterProblem({ headers: [] }), undefined);
  t.match(httpFilterProblem(filter([], 'api')), /path prefix "api"/);
  t.match(httpFilterProblem(filter([], '', ['get'])), /method "get": .*not upper case/);
  t.match(httpFilterProblem(filter([], '', ['G T'])), /method "G T"/);
  t.end();
});

t.test('httpFilterKey: identical filters only; header and method order and header-name case do not count', (t) => {
  const a = filter([['X-User', 'a'], ['x-team', 't']], '/api/', ['POST', 'GET']);
  t.equal(httpFilterKey(a), httpFilterKey(filter([['x-team', 't'], ['x-user', 'a']], '/api/', ['GET', 'POST', 'GET'])));
  t.not(httpFilterKey(a), httpFilterKey(filter([['x-user', 'a'], ['x-team', 't']], '/api', ['GET', 'POST'])), 'another prefix');
  t.not(httpFilterKey(a), httpFilterKey(filter([['x-user', 'a'], ['x-team', 't']], '/api/', ['GET'])), 'other methods');
  t.not(httpFilterKey(a), httpFilterKey(filter([['x-user', 'A'], ['x-team', 't']], '/api/', ['GET', 'POST'])), 'a value in another case');
  t.equal(httpFilterKey({ headers: [] }), httpFilterKey(filter([])), 'absent fields are empty ones');
  t.end();
});

t.test('compareSpecificity: more headers, then a longer prefix, then fewer methods', (t) => {
  const sorted = [
    filter([], '', []),
    filter([], '', ['GET', 'POST']),
    filter([], '/a', []),
    filter([], '', ['GET']),
    filter([['x', '1']], '', []),
    filter([], '/api/', ['GET']),
    filter([['x', '1'], ['y', '2']], '', []),
    filter([['x', '1']], '/api/', []),
  ].sort(compareSpecificity);
  t.strictSame(
    sorted.map((f) => describeHttpFilter(f)),
    ['with x=1 and y=2', 'with x=1 to /api/', 'with x=1', 'to /api/ with GET', 'to /a', 'with GET', 'with GET or POST', ''],
  );
  t.equal(compareSpecificity(filter([], '/a', ['GET']), filter([], '/b', ['PUT'])), 0, 'equally specific: the caller breaks the tie');
  t.end();
});

t.test('describeHttpFilter', (t) => {
  t.equal(describeHttpFilter(filter([])), '');
  t.equal(describeHttpFilter(filter([['x-user', 'alice']], '/api/', ['GET', 'POST'])), 'with x-user=alice to /api/ with GET or POST');
  t.equal(describeHttpFilter(filter([], '', ['GET', 'PUT', 'POST'])), 'with GET, PUT or POST');
  t.equal(describeHttpFilter(filter([['a', '1'], ['b', '2']])), 'with a=1 and b=2');
  t.end();
});
