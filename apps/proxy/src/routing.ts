import type { UpstreamClient } from '@registry-proxy/registry-core';

/** One upstream with the part of the proxy's namespace it serves. */
export interface Route {
  readonly prefix: string;
  readonly namespace: string;
  readonly dockerHub: boolean;
  readonly client: UpstreamClient;
}

/** Where a repository of the proxy lives upstream. */
export interface Target {
  readonly route: Route;
  /** The repository name on the upstream. */
  readonly name: string;
}

/** Maps the proxy's repository names to upstreams by path prefix, longest prefix first. */
export class Router {
  private readonly routes: readonly Route[];

  constructor(routes: readonly Route[]) {
    this.routes = [...routes].sort((a, b) => b.prefix.length - a.prefix.length);
  }

  resolve(name: string): Target | undefined {
    for (const route of this.routes) {
      let rest: string;
      if (route.prefix === '') rest = name;
      else if (name.startsWith(`${route.prefix}/`)) rest = name.slice(route.prefix.length + 1);
      else continue;
      let upstreamName = route.namespace === '' ? rest : `${route.namespace}/${rest}`;
      if (route.dockerHub && !upstreamName.includes('/')) upstreamName = `library/${upstreamName}`;
      return { route, name: upstreamName };
    }
    return undefined;
  }
}
