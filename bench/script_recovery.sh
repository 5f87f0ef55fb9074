#!/bin/bash
# The recovery an expert writes by hand: the procedure etcdrescue runs (stop everywhere, restore the
# backup on the seed, one-member settings, start, fix the peer URL, then `member add` + start each
# joiner), one `ssh` per command, waits as `sleep` loops. The baseline for bench/recovery.py.
#
# usage: script_recovery.sh PROFILE LABROOT BACKUP NAME=IP [NAME=IP ...]
#   PROFILE  okd3 (settings in /etc/etcd/etcd.conf) or kubeadm (flags in the static pod manifest)
#   LABROOT  a lab's directory: its id_ed25519 and known_hosts are used for every login
#   BACKUP   on the seed: okd3 an openshift-ansible backup dir (member/snap/db), kubeadm a snapshot file
#   NAME=IP  the members, the seed first; peer URL https://IP:2380, client URL https://IP:2379
# env: SSH_PORT (2222), POLL (1: seconds between checks), SETTLE (seconds etcd must stay down everywhere
#      before the seed is touched, as etcdrescue's stop gate waits: $ETCDRESCUE_DOWN_SETTLE or 5; a
#      crash-looping etcd can be started once more by a kubelet that read the manifest just before it moved)
set -euo pipefail

if [[ $# -lt 4 ]]; then
  echo "usage: $0 okd3|kubeadm LABROOT BACKUP NAME=IP [NAME=IP ...]" >&2
  exit 2
fi
profile=$1 root=$2 backup=$3
shift 3
port=${SSH_PORT:-2222} poll=${POLL:-1} settle=${SETTLE:-${ETCDRESCUE_DOWN_SETTLE:-5}}
names=() ips=()
for m in "$@"; do
  names+=("${m%%=*}")
  ips+=("${m#*=}")
done
stamp=$(date +%Y%m%dT%H%M%S)

case $profile in
  okd3)
    manifests=/etc/origin/node/pod disabled=/etc/origin/node/pod/disabled
    pki="--cacert /etc/etcd/ca.crt --cert /etc/etcd/peer.crt --key /etc/etcd/peer.key"
    db=$backup/member/snap/db skip_hash=--skip-hash-check ;;
  kubeadm)
    manifests=/etc/kubernetes/manifests disabled=/etc/kubernetes/manifests-disabled
    pki="--cacert /etc/kubernetes/pki/etcd/ca.crt --cert /etc/kubernetes/pki/etcd/healthcheck-client.crt"
    pki+=" --key /etc/kubernetes/pki/etcd/healthcheck-client.key"
    db=$backup skip_hash= ;;
  *) echo "$0: profile must be okd3 or kubeadm, not '$profile'" >&2; exit 2 ;;
esac
seed=${names[0]} seed_ip=${ips[0]}
ctl="ETCDCTL_API=3 etcdctl $pki --endpoints https://$seed_ip:2379"

on() {  # on IP COMMAND: one login, one command
  ssh -F /dev/null -i "$root/id_ed25519" -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes \
      -o UserKnownHostsFile="$root/known_hosts" -p "$port" "root@$1" "$2"
}
say() { echo "$(date +%T.%N | cut -c1-12) $*"; }

# set NAME VALUE on one host: okd3 an etcd.conf line, kubeadm a `- --flag=` item of the disabled manifest
settings() {
  local ip=$1; shift
  local script=""
  if [[ $profile == okd3 ]]; then
    script="cp -p /etc/etcd/etcd.conf /etc/etcd/etcd.conf.bak-$stamp"
    while [[ $# -gt 0 ]]; do
      script+=" && sed -i -E 's|^$1=.*|$1=$2|' /etc/etcd/etcd.conf"
      shift 2
    done
  else
    script="cp -p $disabled/etcd.yaml $disabled/etcd.yaml.bak-$stamp"
    while [[ $# -gt 0 ]]; do
      script+=" && sed -i -E 's|^( *- --$1=).*|\\1$2|' $disabled/etcd.yaml"
      shift 2
    done
  fi
  on "$ip" "$script"
}

if [[ $profile == okd3 ]]; then
  k_name=ETCD_NAME k_cluster=ETCD_INITIAL_CLUSTER k_state=ETCD_INITIAL_CLUSTER_STATE
  k_peer=ETCD_INITIAL_ADVERTISE_PEER_URLS
else
  k_name=name k_cluster=initial-cluster k_state=initial-cluster-state k_peer=initial-advertise-peer-urls
fi

say "stop etcd everywhere"
for ip in "${ips[@]}"; do
  on "$ip" "mkdir -p $disabled && mv $manifests/etcd.yaml $disabled/etcd.yaml"
done
for ip in "${ips[@]}"; do
  on "$ip" "while pgrep -x etcd >/dev/null; do sleep $poll; done"
done
sleep "$settle"
for ip in "${ips[@]}"; do
  on "$ip" "! pgrep -x etcd >/dev/null"
done

say "restore the backup on $seed"
on "$seed_ip" "mv /var/lib/etcd/member /var/lib/etcd/member.bak-$stamp"
on "$seed_ip" "ETCDCTL_API=3 \$(command -v etcdutl || command -v etcdctl) snapshot restore $db $skip_hash \
  --name $seed --initial-cluster $seed=https://$seed_ip:2380 --initial-cluster-token rescue-$stamp \
  --initial-advertise-peer-urls https://$seed_ip:2380 --data-dir /var/lib/etcd/restore-$stamp >/dev/null"
on "$seed_ip" "mv /var/lib/etcd/restore-$stamp/member /var/lib/etcd/member && rmdir /var/lib/etcd/restore-$stamp"
settings "$seed_ip" $k_name "$seed" $k_cluster "$seed=https://$seed_ip:2380" $k_state new \
  $k_peer "https://$seed_ip:2380"

say "start $seed"
on "$seed_ip" "mv $disabled/etcd.yaml $manifests/etcd.yaml"
on "$seed_ip" "until $ctl endpoint health >/dev/null 2>&1; do sleep $poll; done"
id=$(on "$seed_ip" "$ctl member list" | cut -d, -f1)
on "$seed_ip" "$ctl member update $id --peer-urls=https://$seed_ip:2380 >/dev/null"

cluster="$seed=https://$seed_ip:2380" endpoints="https://$seed_ip:2379"
for i in $(seq 1 $((${#ips[@]} - 1))); do
  name=${names[$i]} ip=${ips[$i]}
  say "join $name"
  cluster+=",$name=https://$ip:2380" endpoints+=",https://$ip:2379"
  # etcd refuses a voting member add until every voter has been connected for 5 s ("unhealthy cluster")
  on "$seed_ip" "until $ctl member add $name --peer-urls=https://$ip:2380 >/dev/null 2>&1; do sleep $poll; done"
  settings "$ip" $k_name "$name" $k_cluster "$cluster" $k_state existing $k_peer "https://$ip:2380"
  on "$ip" "mv /var/lib/etcd/member /var/lib/etcd/member.bak-$stamp"
  on "$ip" "mv $disabled/etcd.yaml $manifests/etcd.yaml"
  on "$seed_ip" "until ETCDCTL_API=3 etcdctl $pki --endpoints $endpoints endpoint health >/dev/null 2>&1; do \
    sleep $poll; done"
done

on "$seed_ip" "ETCDCTL_API=3 etcdctl $pki --endpoints $endpoints endpoint health && $ctl member list"
say "done"
