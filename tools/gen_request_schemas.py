#!/usr/bin/env python3
"""Derives src/server/prewalk/requests.schema from kafka-protocol's generated request decoders.

It reads each `impl Decodable for X` of the listed requests (which fields exist in which versions,
their wire types, which tags are known) and the struct definitions (nullability, element types), and
writes our own schema DSL (see src/server/prewalk/schema.rs). No code is copied: the output is a
description of the wire format. Rerun after upgrading kafka-protocol:

    python3 tools/gen_request_schemas.py ~/.cargo/registry/src/*/kafka-protocol-0.18.0 > src/server/prewalk/requests.schema

The schema property test (src/server/prewalk/tests.rs) then checks every API/version against the codec,
and against our own decoders (the `decode` hooks of `handlers::APIS`) for the versions in `BEYOND_CODEC`.
"""
import re
import sys

# (api key, name, module) for every request the broker may have to decode.
APIS = [
    (0, "Produce", "produce"), (1, "Fetch", "fetch"), (2, "ListOffsets", "list_offsets"),
    (3, "Metadata", "metadata"), (8, "OffsetCommit", "offset_commit"),
    (9, "OffsetFetch", "offset_fetch"), (10, "FindCoordinator", "find_coordinator"),
    (11, "JoinGroup", "join_group"), (12, "Heartbeat", "heartbeat"),
    (13, "LeaveGroup", "leave_group"), (14, "SyncGroup", "sync_group"),
    (15, "DescribeGroups", "describe_groups"), (16, "ListGroups", "list_groups"),
    (18, "ApiVersions", "api_versions"), (19, "CreateTopics", "create_topics"),
    (20, "DeleteTopics", "delete_topics"), (22, "InitProducerId", "init_producer_id"),
    (21, "DeleteRecords", "delete_records"), (23, "OffsetForLeaderEpoch", "offset_for_leader_epoch"),
    (32, "DescribeConfigs", "describe_configs"),
    (33, "AlterConfigs", "alter_configs"), (35, "DescribeLogDirs", "describe_log_dirs"),
    (37, "CreatePartitions", "create_partitions"),
    (44, "IncrementalAlterConfigs", "incremental_alter_configs"),
    (60, "DescribeCluster", "describe_cluster"),
    (29, "DescribeAcls", "describe_acls"), (30, "CreateAcls", "create_acls"),
    (31, "DeleteAcls", "delete_acls"), (17, "SaslHandshake", "sasl_handshake"),
    (36, "SaslAuthenticate", "sasl_authenticate"),
    (42, "DeleteGroups", "delete_groups"), (47, "OffsetDelete", "offset_delete"),
    (24, "AddPartitionsToTxn", "add_partitions_to_txn"),
    (25, "AddOffsetsToTxn", "add_offsets_to_txn"), (26, "EndTxn", "end_txn"),
    (27, "WriteTxnMarkers", "write_txn_markers"), (28, "TxnOffsetCommit", "txn_offset_commit"),
    (65, "DescribeTransactions", "describe_transactions"),
    (66, "ListTransactions", "list_transactions"),
]

# Versions kafka-protocol 0.18 cannot decode, which handler modules decode themselves. Per API: the
# new highest version, and per struct the field lines that change (replaced when a field of that name
# exists, appended after `after` otherwise), written from Kafka's request JSON schemas.
BEYOND_CODEC = {
    # KIP-939: two-phase-commit flags.
    "InitProducerId": (6, {"InitProducerIdRequest": [
        ("enable_2pc", "bool v6+", None), ("keep_prepared_txn", "bool v6+", None)]}),
    # KIP-848: topics named by id instead of name.
    "OffsetCommit": (10, {"OffsetCommitRequestTopic": [
        ("name", "str v2-9", None), ("topic_id", "uuid v10+", "name")]}),
    "OffsetFetch": (10, {"OffsetFetchRequestTopics": [
        ("name", "str v8-9", None), ("topic_id", "uuid v10+", "name")]}),
}

PRIM = {"Int8": "i8", "Int16": "i16", "Int32": "i32", "Int64": "i64", "Float64": "f64",
        "Boolean": "bool", "Uuid": "uuid", "String": "str", "CompactString": "str",
        "Bytes": "bytes", "CompactBytes": "bytes"}


def struct_fields(src):
    """struct name -> {field: rust type}"""
    out = {}
    for m in re.finditer(r"pub struct (\w+) \{(.*?)\n\}", src, re.S):
        out[m.group(1)] = dict(re.findall(r"pub (\w+): ([^\n]+),\n", m.group(2) + "\n"))
    return out


def parse_cond(cond):
    lo, hi = None, None
    for op, n in re.findall(r"version (>=|<=) (\d+)", cond):
        if op == ">=":
            lo = int(n)
        else:
            hi = int(n)
    return lo, hi


def versions(lo, hi, vmin, vmax):
    lo = vmin if lo is None else lo
    hi = vmax if hi is None else hi
    if lo == vmin and hi == vmax:
        return ""
    if hi == vmax:
        return f" v{lo}+"
    return f" v{lo}-{hi}"


def wire_type(block, rust_type):
    """The schema type of the one decode in `block` (first decode; the flexible twin is the same)."""
    m = re.search(r"types::(\w+)(\((types::\w+)[^)]*\)?\))?(?: \{ version \})?\.decode", block)
    if not m:
        raise SystemExit(f"no decode in {block!r}")
    kind, inner = m.group(1), m.group(3)
    nullable = rust_type.startswith("Option<")
    q = "?" if nullable else ""
    if kind in ("Array", "CompactArray"):
        ik = inner.split("::")[1]
        elem = re.search(r"Vec<(?:super::)?(\w+)>", rust_type).group(1)
        if ik == "Struct":
            return f"[{elem}]{q}"
        return f"[{PRIM[ik]}]{q}"
    if kind == "Struct":
        return re.sub(r"Option<(\w+)>", r"\1", rust_type) + q
    return PRIM[kind] + q


def valid_versions(body):
    m = re.search(r"version < (\d+) \|\| version > (\d+)", body)
    if m:
        return int(m.group(1)), int(m.group(2))
    v = int(re.search(r"version != (\d+)", body).group(1))
    return v, v


def decode_impl(name, body, fields, flex):
    vmin, vmax = valid_versions(body)
    lines = [f"struct {name}"]
    text = body.split("\n")
    i = 0
    tags = []
    while i < len(text):
        line = text[i]
        m = re.match(r"\s+let (\w+) = (.*)$", line)
        if m and m.group(1) not in ("tag", "size", "num_tagged_fields", "unknown_value"):
            fname, rest = m.groups()
            rtype = fields[name][fname]
            if rest.startswith("types::"):
                lines.append(f"  {fname} {wire_type(rest, rtype)}")
            elif rest.startswith("if "):
                # Collect the whole if/else block by brace depth.
                depth, j, block = 0, i, []
                while True:
                    block.append(text[j])
                    depth += text[j].count("{") - text[j].count("}")
                    if depth == 0 and j > i:
                        break
                    j += 1
                blk = "\n".join(block)
                outer = re.match(r"if ([^{]*)\{", rest).group(1)
                # Split at the top-level else.
                d, split = 0, None
                for k, b in enumerate(block):
                    if k > 0 and d == 1 and b.strip() == "} else {":
                        split = k
                        break
                    d += b.count("{") - b.count("}")
                then_b, else_b = "\n".join(block[1:split]), "\n".join(block[split + 1:])
                if "types::" in else_b:
                    # `if version >= flex { compact } else { classic }`: present in every version.
                    lo, hi = parse_cond(outer)
                    assert lo == flex and hi is None, (name, fname, outer)
                    lines.append(f"  {fname} {wire_type(then_b, rtype)}")
                else:
                    lo, hi = parse_cond(outer)
                    lines.append(f"  {fname} {wire_type(then_b, rtype)}{versions(lo, hi, vmin, vmax)}")
                i = j
        m = re.match(r"\s+(\d+) => \{$", line)
        if m:
            tag = int(m.group(1))
            j = i + 1
            cond = re.match(r"\s+if (.*) \{$", text[j])
            lo, hi = (None, None)
            if cond:
                lo, hi = parse_cond(cond.group(1))
                j += 1
            fm = re.match(r"\s+(\w+) = (types::.*)$", text[j])
            fname = fm.group(1)
            lo = flex if lo is None else lo
            tags.append(f"  tag {tag} {fname} {wire_type(fm.group(2), fields[name][fname])}{versions(lo, hi, vmin, vmax)}")
        i += 1
    return lines + tags


def extend(struct_lines, changes):
    """Applies BEYOND_CODEC field changes to one struct's lines."""
    out = list(struct_lines)
    for field, spec, after in changes:
        line = f"  {field} {spec}"
        at = next((i for i, l in enumerate(out) if l.split()[0] == field), None)
        if at is not None:
            out[at] = line
        elif after is not None:
            out.insert(next(i for i, l in enumerate(out) if l.split()[0] == after) + 1, line)
        else:
            # After the last plain field, before any tagged fields.
            tags = [i for i, l in enumerate(out) if l.split()[0] == "tag"]
            out.insert(tags[0] if tags else len(out), line)
    return out


def main(root):
    print("# Request schemas for the pre-walk: generated by tools/gen_request_schemas.py from")
    print("# kafka-protocol 0.18's request decoders. Format: src/server/prewalk/schema.rs.")
    for key, api, module in APIS:
        src = open(f"{root}/src/messages/{module}_request.rs").read()
        fields = struct_fields(src)
        impls = re.findall(r"impl Decodable for (\w+) \{(.*?)\n\}\n", src, re.S)
        root_name = f"{api}Request"
        # Flexible versions start where the top-level struct first reads a tagged-field section.
        top = dict(impls)[root_name]
        vmin, vmax = valid_versions(top)
        fm = re.search(r"if version >= (\d+) \{\n\s+let num_tagged_fields", top)
        flex = int(fm.group(1)) if fm else None
        if flex is None and re.search(r"\n\s+let num_tagged_fields", top):
            # Read unconditionally: every version is flexible (APIs born after KIP-482).
            flex = vmin
        vmax, changes = BEYOND_CODEC.get(api, (vmax, {}))
        print()
        print(f"api {key} {api} v{vmin}-{vmax} flex {'v' + str(flex) if flex is not None else 'none'}")
        # Root first, then the others in file order.
        order = [root_name] + [n for n, _ in impls if n != root_name]
        bodies = dict(impls)
        for n in order:
            for l in extend(decode_impl(n, bodies[n], fields, flex), changes.get(n, [])):
                print(l)


main(sys.argv[1])
