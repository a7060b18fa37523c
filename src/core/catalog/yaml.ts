// YAML from strangers' files (model cards, mergekit configs), read as plain data. The core schema
// builds no objects, but a tag such as `!!python/object/apply` is still parsed (as a plain value)
// and the library prints a raw YAMLWarning: here warnings stay silent, and each top-level field
// whose value (or key) carries a tag outside the core schema is taken out and named, so callers
// treat it as an invalid fact instead of using it.
import { isMap, isNode, isPair, isScalar, parseDocument, visit, type Node } from 'yaml';

const CORE_TAGS = new Set(['str', 'int', 'float', 'bool', 'null', 'seq', 'map'].map((t) => `tag:yaml.org,2002:${t}`));

export interface ParsedYaml {
  /** The document as plain data, without the tagged fields. */
  data: unknown;
  /** Top-level fields removed because they carry a tag, with the tag as written (`!!python/...`). */
  tagged: { key: string; tag: string }[];
}

/** A YAML text as plain data; throws an Error with the first parse error's first line. */
export function parsePlainYaml(text: string): ParsedYaml {
  const doc = parseDocument(text, { prettyErrors: true, logLevel: 'silent' });
  if (doc.errors.length > 0) throw new Error(doc.errors[0].message.split('\n')[0]);
  const tagged: { key: string; tag: string }[] = [];
  if (isMap(doc.contents)) {
    doc.contents.items = doc.contents.items.filter((pair) => {
      const tag = foreignTag(pair.key) ?? foreignTag(pair.value);
      if (tag === undefined) return true;
      tagged.push({ key: isScalar(pair.key) ? String(pair.key.value) : '?', tag: shortTag(tag) });
      return false;
    });
  } else {
    const tag = foreignTag(doc.contents);
    if (tag !== undefined) return { data: null, tagged: [{ key: '', tag: shortTag(tag) }] };
  }
  return { data: doc.toJS({ maxAliasCount: 100 }), tagged };
}

/** The first tag outside the core schema anywhere in `node`, or undefined. */
function foreignTag(node: unknown): string | undefined {
  if (!isNode(node) && !isPair(node)) return undefined;
  let found: string | undefined;
  const check = (n: Node) => {
    if (n.tag && !CORE_TAGS.has(n.tag)) {
      found = n.tag;
      return visit.BREAK;
    }
    return undefined;
  };
  visit(node as Node, { Scalar: (_, n) => check(n), Map: (_, n) => check(n), Seq: (_, n) => check(n) });
  return found;
}

function shortTag(tag: string): string {
  return tag.startsWith('tag:yaml.org,2002:') ? `!!${tag.slice('tag:yaml.org,2002:'.length)}` : tag;
}
