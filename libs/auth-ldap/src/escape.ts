/**
 * Escapes a value for an LDAP search filter (RFC 4515 section 3): `*`, `(`, `)`, `\` and NUL
 * become `\2a`, `\28`, `\29`, `\5c`, `\00`, so a username can never change the filter's shape.
 */
export function escapeFilterValue(value: string): string {
  return value.replace(/[*()\\\0]/g, (c) => `\\${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/**
 * Escapes a value for a DN attribute value (RFC 4514 section 2.4): `,+"\<>;=` and NUL anywhere,
 * a leading space or `#`, and a trailing space.
 */
export function escapeDnValue(value: string): string {
  let out = value.replace(/[,+"\\<>;=\0]/g, (c) => (c === '\0' ? '\\00' : `\\${c}`));
  if (out.startsWith(' ') || out.startsWith('#')) out = `\\${out}`;
  if (out.endsWith(' ') && out.length > 1) out = `${out.slice(0, -1)}\\ `;
  return out;
}

/** Fills `{{name}}` placeholders with escaped values; unknown placeholders are an error. */
export function fillTemplate(template: string, values: Readonly<Record<string, string>>, escape: (v: string) => string): string {
  return template.replace(/\{\{(\w+)\}\}/g, (_whole, key: string) => {
    const v = values[key];
    if (v === undefined) throw new Error(`unknown placeholder {{${key}}}`);
    return escape(v);
  });
}
