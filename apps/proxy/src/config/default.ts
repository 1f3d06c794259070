/**
 * The configuration the proxy starts with when no file is given: Docker Hub behind
 * http://127.0.0.1:5000, one user `demo` with password `demo` who may pull anything, and an
 * in-memory signing key. For trying it out on a laptop, never for production.
 */
export const DEFAULT_CONFIG_YAML = `# registry-proxy embedded default configuration
listen:
  host: 127.0.0.1
  port: 5000
auth:
  - type: static
    users:
      - username: demo
        # bcrypt of "demo"
        passwordHash: "$2b$10$lcZrZlRK3j9ekG2djuvfwOk0A6k5YlI5xP.NvO1iHnaC4/.WIdGQe"
rules:
  - account: demo
    repository: "**"
    actions: [pull]
upstreams:
  - name: docker-hub
    prefix: ""
    url: https://registry-1.docker.io
    tokenRealms: [https://auth.docker.io]
`;
