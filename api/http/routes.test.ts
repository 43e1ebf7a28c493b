import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRoutes } from './routes.ts';

describe('the route table', () => {
  let server: Server;
  let base: string;

  beforeAll(async () => {
    const routes = createRoutes();
    const answer = (name: string) => (_req: unknown, res: import('node:http').ServerResponse, m: unknown) =>
      void res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ name, ...(m as object) }));
    routes
      .add(['GET', 'HEAD'], '/healthz', answer('health'))
      .add('GET', '/things/:id', answer('first'))
      .add(['GET', 'PUT'], '/things/:id', answer('second'))
      .add('POST', '/runner/builds/:build/artifacts', answer('upload'))
      .add('*', '/runner/*', answer('runner rest'))
      .add('*', '/graphql', answer('graphql'))
      .add(['GET', 'HEAD'], '/*', answer('console'));
    server = createServer((req, res) => void routes.handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  const call = async (method: string, path: string) => {
    const response = await fetch(`${base}${path}`, { method });
    return { status: response.status, allow: response.headers.get('allow'), body: await response.json() };
  };

  it('gives a request to the first route, in registration order, that takes its path and method', async () => {
    expect((await call('GET', '/things/a%20b')).body).toMatchObject({ name: 'first', params: { id: 'a b' } });
    expect((await call('PUT', '/things/1')).body).toMatchObject({ name: 'second', params: { id: '1' } });
    expect((await call('DELETE', '/graphql')).body).toMatchObject({ name: 'graphql' });
    expect((await call('GET', '/healthz')).body).toMatchObject({ name: 'health' });
  });

  it('gives a wildcard the rest of the path, including none', async () => {
    expect((await call('DELETE', '/runner/a/b')).body).toMatchObject({
      name: 'runner rest',
      params: { '*': 'a/b' },
    });
    expect((await call('GET', '/runner')).body).toMatchObject({ name: 'runner rest', params: { '*': '' } });
    expect((await call('GET', '/builds/42/log')).body).toMatchObject({ name: 'console' });
    expect((await call('GET', '/')).body).toMatchObject({ name: 'console' });
  });

  it('answers 405 with Allow for a named path asked with another method, which no wildcard takes', async () => {
    const upload = await call('GET', '/runner/builds/1/artifacts');
    expect(upload).toEqual({
      status: 405,
      allow: 'POST',
      body: { error: 'GET /runner/builds/1/artifacts is not an endpoint' },
    });
    expect(await call('DELETE', '/things/1')).toMatchObject({ status: 405, allow: 'GET, PUT' });
    expect(await call('POST', '/healthz')).toMatchObject({ status: 405, allow: 'GET, HEAD' });
    expect(await call('POST', '/elsewhere')).toMatchObject({ status: 405, allow: 'GET, HEAD' });
  });

  it('answers 404 for a path that no route names', async () => {
    const routes = createRoutes().add('GET', '/only/:id', () => {});
    const local = createServer((req, res) => void routes.handle(req, res));
    await new Promise<void>((resolve) => local.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(local.address() as AddressInfo).port}`;
      for (const path of ['/nothing', '/only', '/only/1/more', '/only/%E0%A4%A']) {
        const response = await fetch(`${url}${path}`);
        expect(response.status).toBe(404);
        expect(await response.json()).toEqual({ error: `GET ${path} is not an endpoint` });
      }
    } finally {
      await new Promise((resolve) => local.close(resolve));
    }
  });

  it('refuses a pattern with a wildcard before its end', () => {
    expect(() => createRoutes().add('GET', '/a/*/b', () => {})).toThrow(/may only end/);
  });
});
