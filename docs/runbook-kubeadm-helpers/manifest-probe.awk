
function fail(msg) { printf "%s: %s\n", f, msg > "/dev/stderr"; exit 3 }
function value_of(v,   c) {
  sub(/^[ \t]+/, "", v); sub(/[ \t]+#.*$/, "", v); sub(/[ \t]+$/, "", v)
  if (v ~ /^#/) return ""
  c = substr(v, 1, 1)
  if (length(v) > 1 && (c == "\"" || c == sq) && substr(v, length(v)) == c) v = substr(v, 2, length(v) - 2)
  return v
}
function locate(   i, s, ind, t, st, sc, dc, ic, sd, k, pend, r, n) {
  st = "out"; nk = 0
  for (i = 1; i <= NR; i++) {
    s = line[i]
    if (s ~ /^[ \t]*(#.*)?$/) continue
    match(s, /^ */); ind = RLENGTH; t = substr(s, ind + 1)
    if (ind == 0) { st = (t ~ /^spec:[ \t]*(#.*)?$/) ? "spec" : "out"; sc = -1; continue }
    if (st == "out") continue
    if (sc < 0) sc = ind
    if (st == "cmd0") {
      if (ind >= ic && t ~ /^-( |$)/) { sd = ind; st = "cmd" }
      else { ckind[k] = (ind > ic) ? "nested" : "null"; st = "item" }
    }
    if (st == "cmd") {
      if (ind == sd && t ~ /^-( |$)/) {
        n = ++cn[k]; cl[k, n] = i; r = substr(t, 2); match(r, /^ */)
        cpre[k, n] = substr(s, 1, ind + 1 + RLENGTH); ctxt[k, n] = substr(r, RLENGTH + 1)
        continue
      }
      if (ind > sd) { if (!cbad[k]) cbad[k] = i; continue }
      st = "item"
    }
    if (st == "cont0") {
      if (ind >= sc && t ~ /^-( |$)/) { dc = ind; st = "item" } else st = "spec"
    }
    if (st == "item") {
      if (ind == dc && t ~ /^-( |$)/) {
        k = ++nk; r = substr(t, 2); match(r, /^ */)
        if (RLENGTH == length(r)) { pend = 1; continue }
        pend = 0; ic = ind + 1 + RLENGTH; t = substr(r, RLENGTH + 1); ind = ic
      } else if (ind <= dc) st = "spec"
      else { if (pend) { ic = ind; pend = 0 } if (ind != ic) continue }
    }
    if (st == "item") {
      if (t ~ /^name:( |$)/) { if (value_of(substr(t, 6)) == "etcd") etcd[k] = 1 }
      else if (t ~ /^command:( |$)/) {
        ncmd[k]++; r = value_of(substr(t, 9))
        if (r == "") { ckind[k] = "block"; cn[k] = 0; st = "cmd0" } else ckind[k] = "inline"
      }
      continue
    }
    if (st == "spec" && ind == sc && t ~ /^containers:[ \t]*(#.*)?$/) st = "cont0"
  }
  if (st == "cmd0") ckind[k] = "null"
}
function pick(   k, e, n) {
  locate(); n = 0
  for (k = 1; k <= nk; k++) if (etcd[k]) { n++; e = k }
  if (n == 0) fail("no block-style spec.containers item named etcd")
  if (n > 1) fail(n " containers named etcd")
  if (ckind[e] == "") fail("the etcd container has no command: key")
  if (ncmd[e] > 1) fail("the etcd container has " ncmd[e] " command: keys")
  if (ckind[e] == "inline") fail("the etcd command: is on one line (a flow list or a scalar), not one - item a line")
  if (ckind[e] != "block" || cn[e] == 0) fail("the etcd command: has no - items")
  if (cbad[e]) fail("line " cbad[e] ": an etcd command item spans lines")
  return e
}
function parse(x,   c, n) {
  iq = ""; itail = ""; ibody = x; ierr = ""
  c = substr(x, 1, 1)
  if (c == "\"" || c == sq) {
    n = index(substr(x, 2), c)
    if (n == 0) { ierr = "a quoted item without its closing quote"; return }
    ibody = substr(x, 2, n - 1); itail = substr(x, n + 2); iq = c
    if (c == "\"" && index(ibody, "\\")) ierr = "a double-quoted item with an escape"
    if (itail !~ /^([ \t]+#.*)?[ \t]*$/) ierr = "a quoted item with an escaped quote or text after it"
    return
  }
  n = match(x, /[ \t]#/)
  if (n) { ibody = substr(x, 1, n - 1); itail = substr(x, n) }
  n = match(ibody, /[ \t]+$/)
  if (n) { itail = substr(ibody, n) itail; ibody = substr(ibody, 1, n - 1) }
}
function is_flag(body, name) { return body == "--" name || index(body, "--" name "=") == 1 }
BEGIN {
  sq = sprintf("%c", 39)
  nw = split(want, W, ";"); nd = split(drop, D, ";")
  for (m = 1; m <= nw; m++) { p = index(W[m], "="); K[m] = substr(W[m], 3, p - 3); V[m] = substr(W[m], p + 1) }
}
{ line[NR] = $0 }

END {
  e = pick()
  for (j = 1; j <= cn[e]; j++) {
    parse(ctxt[e, j])
    if (ierr != "") exit 1
    for (m = 1; m <= nw; m++) if (is_flag(ibody, K[m])) { seen[m] = 1; if (ibody != W[m]) exit 1 }
    for (m = 1; m <= nd; m++) if (is_flag(ibody, D[m])) exit 1
  }
  for (m = 1; m <= nw; m++) if (!seen[m]) exit 1
}
