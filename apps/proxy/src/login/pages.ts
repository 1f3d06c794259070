import type { CliSecretRecord } from './secrets.js';

/** HTML-escapes text for element content and double-quoted attributes. */
export function esc(s: string): string {
  return s.replace(/[&<>"'`]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** No scripts, no inline styles, nothing from elsewhere: the pages work without JavaScript. */
export const CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

export const STYLESHEET = `body{font:15px/1.5 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#1b1f24}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}
code,pre{font:13px ui-monospace,monospace;background:#f3f4f6;border-radius:4px}
pre{padding:.75rem;overflow-x:auto;white-space:pre-wrap;word-break:break-all}
.secret{border:2px solid #2563eb;padding:1rem;border-radius:6px;background:#eff6ff}
.error{border:2px solid #dc2626;padding:1rem;border-radius:6px;background:#fef2f2}
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #e5e7eb}
button{font:inherit;padding:.3rem .8rem;cursor:pointer}.muted{color:#6b7280}`;

function layout(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="same-origin"><title>${esc(title)}</title><link rel="stylesheet" href="/login/style.css"></head>
<body>${body}</body></html>`;
}

const when = (ms: number) =>
  new Date(ms)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, ' UTC');

export interface AccountView {
  readonly subject: string;
  readonly groups: readonly string[];
  /** Groups not listed (a person can be in hundreds). */
  readonly moreGroups?: number;
  readonly registry: string;
  readonly csrf: string;
  /** Shown once, right after it was made. */
  readonly created?: { readonly secret: string; readonly record: CliSecretRecord };
  readonly secrets: readonly CliSecretRecord[];
  /** Operators also see everyone else's secrets. */
  readonly others?: readonly CliSecretRecord[];
  readonly notice?: string;
}

function secretRows(list: readonly CliSecretRecord[], csrf: string, showOwner: boolean): string {
  if (list.length === 0) return '<p class="muted">None.</p>';
  const rows = list
    .map(
      (r) => `<tr><td><code>${esc(r.id)}</code></td>${showOwner ? `<td>${esc(r.identity.subject)}</td>` : ''}<td>${when(r.createdAt)}</td><td>${when(r.expiresAt)}</td>
<td><form method="post" action="/login/secrets/${encodeURIComponent(r.id)}/revoke"><input type="hidden" name="csrf" value="${esc(csrf)}"><button type="submit">Revoke</button></form></td></tr>`,
    )
    .join('\n');
  return `<table><thead><tr><th>Id</th>${showOwner ? '<th>Owner</th>' : ''}<th>Created</th><th>Expires</th><th></th></tr></thead><tbody>${rows}</tbody></table>`;
}

/** The signed-in page: who you are, the new secret (once), your secrets with revoke buttons. */
export function accountPage(v: AccountView): string {
  const created = v.created
    ? `<section class="secret"><h2>Your new CLI secret</h2>
<p>Use it as the password for <code>docker login</code>. It is shown only now; it expires ${when(v.created.record.expiresAt)}.</p>
<pre id="secret">${esc(v.created.secret)}</pre>
<p>Run this, and paste the secret at the <code>Password:</code> prompt (so it stays out of your shell history):</p>
<pre id="command">docker login ${esc(v.registry)} -u ${esc(quoteShell(v.subject))}</pre></section>`
    : '';
  return layout(
    'registry-proxy: signed in',
    `<h1>Signed in as <span id="subject">${esc(v.subject)}</span></h1>
<p class="muted">Groups: ${v.groups.length > 0 ? v.groups.map((g) => `<code>${esc(g)}</code>`).join(' ') : 'none'}${v.moreGroups ? ` and ${v.moreGroups} more` : ''}</p>
${v.notice ? `<p id="notice">${esc(v.notice)}</p>` : ''}
${created}
<h2>Your CLI secrets</h2>
${secretRows(v.secrets, v.csrf, false)}
<p><a id="new-secret" href="/login?new=1">Create a new secret</a> <span class="muted">(signs you in again with your identity provider)</span></p>
${v.others ? `<h2>All users' secrets (operator)</h2>${secretRows(v.others, v.csrf, true)}` : ''}
<form method="post" action="/login/logout"><input type="hidden" name="csrf" value="${esc(v.csrf)}"><p><button type="submit">Sign out</button></p></form>`,
  );
}

/** A sign-in that went wrong: what happened and how to start again. */
export function errorPage(message: string): string {
  return layout('registry-proxy: sign-in failed', `<h1>Sign-in failed</h1><div class="error"><p id="error">${esc(message)}</p></div><p><a href="/login">Sign in again</a></p>`);
}

export function signedOutPage(): string {
  return layout('registry-proxy: signed out', '<h1>Signed out</h1><p><a href="/login">Sign in again</a></p>');
}

/** A username as one shell word inside the copied command. */
function quoteShell(s: string): string {
  return /^[A-Za-z0-9._@+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
