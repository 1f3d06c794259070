import { normaliseRegistryHost, type UpstreamClient } from '@registry-proxy/registry-core';
import type { PullCache } from './cache/pull-cache.js';
import type { Flights, SharedResponse } from './coalesce.js';

/** One upstream with the part of the proxy's namespace it serves. */
export interface Route {
  readonly prefix: string;
  readonly namespace: string;
  readonly dockerHub: boolean;
  /** Virtual hosts (`host` or `host:port`, lower case) this route serves; empty: any host. */
  readonly hosts: readonly string[];
  /** Registry hosts this upstream mirrors for containerd's `?ns=` requests. */
  readonly mirrorOf: readonly string[];
  readonly client: UpstreamClient;
  /** Identical concurrent manifest GET/HEAD requests share upstream requests (undefined: off). */
  readonly flights?: Flights<SharedResponse | undefined> | undefined;
  /** The pull-through cache of this upstream (undefined: off). */
  readonly cache?: PullCache | undefined;
}

/** Where a repository of the proxy lives upstream. */
export interface Target {
  readonly route: Route;
  /** The repository name on the upstream. */
  readonly name: string;
  /** The registry host of a mirror request (`?ns=`), echoed as `OCI-Namespace`. */
  readonly ns?: string;
}

/** How a request reached the proxy: the Host it named and containerd's `ns` query parameter. */
export interface RouteContext {
  readonly host?: string | undefined;
  readonly ns?: string | undefined;
}

export { normaliseRegistryHost };

function hostMatches(routeHost: string, requestHost: string): boolean {
  if (routeHost === requestHost) return true;
  // A route host without a port serves that name on any port.
  return !routeHost.includes(':') && requestHost.replace(/:\d+$/, '') === routeHost;
}

/**
 * Maps the names clients use to upstreams: as a containerd mirror (`?ns=<registry>`, names
 * unchanged), by virtual host, and by path prefix (longest first). Routes that list hosts serve
 * only those hosts; the others serve every host that no route lists.
 */
export class Router {
  readonly routes: readonly Route[];

  constructor(routes: readonly Route[]) {
    this.routes = [...routes].sort((a, b) => b.prefix.length - a.prefix.length);
  }

  /** The routes that serve a Host. */
  forHost(host: string | undefined): readonly Route[] {
    const h = host?.toLowerCase();
    const named = h === undefined ? [] : this.routes.filter((r) => r.hosts.some((rh) => hostMatches(rh, h)));
    return named.length > 0 ? named : this.routes.filter((r) => r.hosts.length === 0);
  }

  resolve(name: string, ctx: RouteContext = {}): Target | undefined {
    if (ctx.ns !== undefined) {
      const ns = normaliseRegistryHost(ctx.ns);
      const route = this.routes.find((r) => r.mirrorOf.includes(ns));
      if (!route) return undefined;
      return { route, name: route.dockerHub && !name.includes('/') ? `library/${name}` : name, ns: ctx.ns };
    }
    for (const route of this.forHost(ctx.host)) {
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

  /**
   * The repository name of a token scope for a request: for a mirror request, qualified with
   * the registry it names (`quay.io/team/app`, the form distribution's scope grammar allows),
   * so that the token is asked for, and granted on, that registry's upstream; otherwise the
   * name itself.
   */
  static scopeName(name: string, ns: string | undefined): string {
    return ns === undefined ? name : `${ns.toLowerCase()}/${name}`;
  }

  /**
   * Where the repository of a token scope lives: the upstream, and the name the access rules
   * see (a mirror scope's name without its registry). The inverse of {@link Router.scopeName}:
   * a first component naming a registry that an upstream mirrors is that registry.
   */
  locate(scopeName: string, host: string | undefined): { upstream: string; name: string } | undefined {
    const slash = scopeName.indexOf('/');
    if (slash > 0) {
      const registry = normaliseRegistryHost(scopeName.slice(0, slash));
      if (this.routes.some((r) => r.mirrorOf.includes(registry))) {
        const name = scopeName.slice(slash + 1);
        const t = this.resolve(name, { ns: registry });
        return t ? { upstream: t.route.client.name, name } : undefined;
      }
    }
    const t = this.resolve(scopeName, { host });
    return t ? { upstream: t.route.client.name, name: scopeName } : undefined;
  }

  /**
   * The name a client uses for an upstream repository on a route, or undefined when the route
   * does not expose it (outside its namespace, or shadowed by a longer prefix).
   */
  clientName(route: Route, upstreamName: string, host: string | undefined): string | undefined {
    let rest = upstreamName;
    if (route.namespace !== '') {
      if (!upstreamName.startsWith(`${route.namespace}/`)) return undefined;
      rest = upstreamName.slice(route.namespace.length + 1);
    }
    const name = route.prefix === '' ? rest : `${route.prefix}/${rest}`;
    const back = this.resolve(name, { host });
    return back && back.route === route && back.name === upstreamName ? name : undefined;
  }
}
