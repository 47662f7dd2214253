#!/bin/bash
# setup-multus-interfaces.sh - prepare the Multus ENIs of an EKS worker (Amazon Linux 2023) before kubelet starts.
#
# The ENI Lambda attaches one ENI per Multus network at device indexes 1..N while the instance is held in
# Pending:Wait. This script runs from user data (cloud-init, before nodeadm-run starts kubelet) and, for each
# device index i in 1..N:
#   1. waits (bounded, polling) until IMDSv2 reports a MAC with device-number i and a link with that MAC exists in
#      /sys/class/net (and, where udev runs, until udev has finished its own add-event processing/renaming of it);
#   1b. on the EKS AL2023 AMI, waits until nodeadm's udev-net-manager@<original name> has handled the link (see
#      "systemd-networkd" below) before renaming it;
#   2. brings it down if needed, renames it to ${MULTUS_IFNAME_PREFIX}i (multus1, multus2, ...), sets the MTU if
#      MULTUS_MTU is given, sets net.ipv4.conf.<name>.rp_filter=0 and brings it up;
#   3. persists the result: <SYSCTL_DIR>/90-multus.conf (rp_filter=0 by name) and
#      <NETWORK_LINK_DIR>/10-<name>.link (udev renames the ENI again on every boot, matched by its permanent MAC).
# Links whose MAC IMDS does not report at a device index in 1..N (the primary ENI at device index 0, anything
# else) are never touched. Re-running when the links are already renamed and up changes nothing and exits 0.
#
# Relink (host-device networks): a host-device NAD moves the whole ENI into one pod as net1. CNI DEL gives it back
# as multus<N>; but if the pod's network namespace is removed without a DEL, the kernel returns the NIC to the host
# under its pod-side name (net1), and no NAD naming multus<N> matches it any more (udev's .link naming does not
# rename a link that userspace already renamed). So the boot run also writes <UDEV_RULES_DIR>/90-eks-multus-relink.rules
# (a Multus ENI's MAC appearing under any other name wants eks-multus-relink.service) and that unit in
# <SYSTEMD_UNIT_DIR>, which re-runs this script with MULTUS_RELINK=1: look once, rename what is on the host back
# to its stable name and bring it up, write nothing, and treat an ENI that is not on the host (inside a pod right
# now) as fine rather than missing.
#
# systemd-networkd: the Multus ENIs are HANDED TO IT, deterministically. On the EKS AL2023 AMI a udev rule starts
# nodeadm's udev-net-manager@<ifname> for every new ENA link; that unit reads /sys/class/net/<ifname>/address,
# records its decision in /etc/eks/nodeadm/udev-net-manager/<instance-id>/<ifname> ("io.systemd.Network" before
# kubelet starts) and writes /run/systemd/network/70-eks-<ifname>.network (matched by the permanent MAC: DHCP,
# MTU 9001, route table 10000 + device index, a rule for the ENI's own address). If the link were renamed before
# the unit read sysfs, the unit would fail and retry until systemd's start limit, and the ENI would stay unmanaged:
# a race. So a link is renamed only once that unit has written its .network file (or decided on another manager),
# or after MULTUS_NET_MANAGER_GRACE_SECONDS without any sign of it (logged as a WARNING: the ENI stays unmanaged).
# The .network file matches the MAC, so networkd keeps managing the renamed link; after a reboot the .link file
# renames it first and the unit then handles multus<N> itself, with the same result.
#
# Configuration (environment or plain shell variables set above this script's body in the same user-data part;
# a user-data part must still start with "#!/bin/bash"):
#   MULTUS_INTERFACE_COUNT  required, integer 1..999: number of Multus ENIs (device indexes 1..N)
#   MULTUS_IFNAME_PREFIX    default "multus"; letters/digits/_/-, starting with a letter; prefix+N <= 15 chars
#   MULTUS_WAIT_SECONDS     default 300: overall deadline for the ENIs to appear (0 = look once)
#   MULTUS_MTU              optional, 68..65535: MTU to set on every Multus interface
#   MULTUS_POLL_SECONDS     default 1: poll interval (may be fractional)
#   MULTUS_RELINK           default 0; 1 = the relink run described above (set by eks-multus-relink.service)
#   Overridable roots (tests): IMDS_ENDPOINT (http://169.254.169.254), SYSFS_NET (/sys/class/net),
#   SYSCTL_DIR (/etc/sysctl.d), NETWORK_LINK_DIR (/etc/systemd/network), UDEV_DATA_DIR (/run/udev/data; the udev
#   check is skipped when that directory does not exist), NET_MANAGER_UNIT
#   (/etc/systemd/system/udev-net-manager@.service; the nodeadm wait is skipped when it does not exist),
#   NET_MANAGER_CACHE_DIR (/etc/eks/nodeadm/udev-net-manager), NETWORKD_RUNTIME_DIR (/run/systemd/network),
#   UDEV_RULES_DIR (/etc/udev/rules.d), SYSTEMD_UNIT_DIR (/etc/systemd/system).
#   MULTUS_NET_MANAGER_GRACE_SECONDS default 60: how long a link may wait for udev-net-manager (the unit gives up
#   after systemd's default start limit, 5 failed starts in 10 s, so after this it can no longer race).
#
# Logging: every line goes to stderr and starts with "multus-interfaces:" (grep cloud-init-output.log / journal).
#
# Failure policy: exit 0 = all N interfaces configured; exit 1 = an ENI did not appear before the deadline (the log
# names the missing device indexes and why), a name was already taken by another link, or a file could not be
# written; exit 2 = invalid configuration. Interfaces that did appear are configured and persisted even when
# another one is missing. A non-zero exit does NOT stop the node from booting or joining: cloud-init logs the
# failed part and carries on, and nodeadm still starts kubelet. That is deliberate: a missing ENI means the ENI
# Lambda failed, and the Lambda then ends the lifecycle action with ABANDON, which terminates the instance anyway;
# blocking the boot here would only hide the node from kubectl while that happens. If a node does stay up, pods
# attached to the missing network fail to start there (their NAD master does not exist) - visible, not silent.
#
# Tools used: bash, curl, ip, sysctl, coreutils.
set -euo pipefail

readonly LOG_PREFIX="multus-interfaces:"
# Links seen with no udev database entry are used anyway after this many polls (udev normally needs milliseconds).
readonly UDEV_GRACE_POLLS=10
# Progress lines while waiting, at most every this many seconds (changes of state are logged at once).
readonly PROGRESS_EVERY=10

join() { # join SEPARATOR ITEM... -> stdout
    local sep=$1 out=""
    shift
    while (($# > 0)); do
        out+=${out:+$sep}$1
        shift
    done
    printf '%s' "$out"
}
log() { printf '%s %s\n' "$LOG_PREFIX" "$*" >&2; }
warn() { log "WARNING: $*"; }
err() { log "ERROR: $*"; }
config_error() {
    err "invalid configuration: $*"
    exit 2
}

# ---------------------------------------------------------------------------------------------------- configuration
count=${MULTUS_INTERFACE_COUNT:-}
prefix=${MULTUS_IFNAME_PREFIX:-multus}
wait_seconds=${MULTUS_WAIT_SECONDS:-300}
poll_seconds=${MULTUS_POLL_SECONDS:-1}
mtu=${MULTUS_MTU:-}
imds=${IMDS_ENDPOINT:-http://169.254.169.254}
imds=${imds%/}
sysfs_net=${SYSFS_NET:-/sys/class/net}
sysctl_dir=${SYSCTL_DIR:-/etc/sysctl.d}
link_dir=${NETWORK_LINK_DIR:-/etc/systemd/network}
udev_data_dir=${UDEV_DATA_DIR:-/run/udev/data}
net_manager_unit=${NET_MANAGER_UNIT:-/etc/systemd/system/udev-net-manager@.service}
net_manager_cache=${NET_MANAGER_CACHE_DIR:-/etc/eks/nodeadm/udev-net-manager}
networkd_dir=${NETWORKD_RUNTIME_DIR:-/run/systemd/network}
net_manager_grace=${MULTUS_NET_MANAGER_GRACE_SECONDS:-60}
relink=${MULTUS_RELINK:-0}
udev_rules_dir=${UDEV_RULES_DIR:-/etc/udev/rules.d}
systemd_unit_dir=${SYSTEMD_UNIT_DIR:-/etc/systemd/system}
self_path=$(realpath -- "$0")

if [[ -z $count ]]; then
    config_error "MULTUS_INTERFACE_COUNT is required (an integer >= 1: how many Multus ENIs, at device indexes 1..N)"
fi
if ! [[ $count =~ ^[1-9][0-9]{0,2}$ ]]; then
    config_error "MULTUS_INTERFACE_COUNT must be an integer between 1 and 999, got '${count}'"
fi
if ! [[ $prefix =~ ^[A-Za-z][A-Za-z0-9_-]*$ ]]; then
    config_error "MULTUS_IFNAME_PREFIX must start with a letter and contain only letters, digits, '_' and '-', got '${prefix}'"
fi
if ((${#prefix} + ${#count} > 15)); then
    config_error "MULTUS_IFNAME_PREFIX '${prefix}' is too long: '${prefix}${count}' exceeds the 15-character interface name limit"
fi
if ! [[ $wait_seconds =~ ^[0-9]{1,6}$ ]]; then
    config_error "MULTUS_WAIT_SECONDS must be an integer number of seconds (0..999999), got '${wait_seconds}'"
fi
if ! [[ $poll_seconds =~ ^[0-9]{1,4}(\.[0-9]{1,3})?$ && $poll_seconds =~ [1-9] ]]; then
    config_error "MULTUS_POLL_SECONDS must be a positive number of seconds (e.g. 1 or 0.2), got '${poll_seconds}'"
fi
if [[ -n $mtu ]]; then
    if ! [[ $mtu =~ ^[1-9][0-9]{1,4}$ ]] || ((mtu < 68 || mtu > 65535)); then
        config_error "MULTUS_MTU must be empty or an integer between 68 and 65535, got '${mtu}'"
    fi
fi
if [[ $relink != 0 && $relink != 1 ]]; then
    config_error "MULTUS_RELINK must be 0 or 1, got '${relink}'"
fi
if ! [[ $net_manager_grace =~ ^[0-9]{1,4}$ ]]; then
    config_error "MULTUS_NET_MANAGER_GRACE_SECONDS must be an integer number of seconds (0..9999), got '${net_manager_grace}'"
fi
# Decimal from here on (the patterns above exclude leading zeros for count and mtu).
wait_seconds=$((10#$wait_seconds))
if ((relink)) && [[ -z ${MULTUS_WAIT_SECONDS:-} ]]; then
    wait_seconds=$((10#$net_manager_grace + 10)) # only links on the host are waited for (udev-net-manager)
fi
net_manager_grace=$((10#$net_manager_grace))

# ---------------------------------------------------------------------------------------------------- IMDSv2
imds_token=""
imds_last_problem=""

imds_problem() {
    if [[ $1 != "$imds_last_problem" ]]; then
        warn "IMDS: $1 (will retry)"
        imds_last_problem=$1
    fi
}

imds_get_token() {
    [[ -n $imds_token ]] && return 0
    local out
    if ! out=$(curl -sS -f --noproxy '*' --connect-timeout 1 --max-time 3 -X PUT \
        -H "X-aws-ec2-metadata-token-ttl-seconds: 21600" "${imds}/latest/api/token" 2>&1); then
        imds_problem "could not get an IMDSv2 token from ${imds}/latest/api/token: ${out}"
        return 1
    fi
    if [[ -z $out ]]; then
        imds_problem "empty IMDSv2 token from ${imds}/latest/api/token"
        return 1
    fi
    imds_token=$out
}

# imds_get PATH: GET latest/meta-data/PATH with the token; the body is left in IMDS_REPLY.
imds_get() {
    local path=$1 out
    IMDS_REPLY=""
    imds_get_token || return 1
    if ! out=$(curl -sS -f --noproxy '*' --connect-timeout 1 --max-time 3 \
        -H "X-aws-ec2-metadata-token: ${imds_token}" "${imds}/latest/meta-data/${path}" 2>&1); then
        imds_token="" # it may have expired or been rejected: fetch a fresh one next time
        imds_problem "GET latest/meta-data/${path} failed: ${out}"
        return 1
    fi
    if [[ -n $imds_last_problem ]]; then
        log "IMDS: reachable again"
        imds_last_problem=""
    fi
    IMDS_REPLY=$out
}

declare -A mac_of=() # device index -> MAC (lower case), as reported by IMDS

# Learn which MAC sits at which wanted device index. device-number is asked again on every poll for MACs not yet
# mapped: IMDS reports 0 for a freshly attached ENI until its details have propagated.
refresh_imds_map() {
    imds_get "network/interfaces/macs/" || return 1
    local listing=$IMDS_REPLY line mac idx i known
    local -a macs=()
    while IFS= read -r line; do
        line=${line%/}
        line=${line,,}
        [[ $line =~ ^([0-9a-f]{2}:){5}[0-9a-f]{2}$ ]] && macs+=("$line")
    done <<<"$listing"
    for mac in "${macs[@]}"; do
        known=0
        for i in "${!mac_of[@]}"; do
            [[ ${mac_of[$i]} == "$mac" ]] && known=1
        done
        ((known)) && continue
        imds_get "network/interfaces/macs/${mac}/device-number" || continue
        idx=${IMDS_REPLY//[[:space:]]/}
        [[ $idx =~ ^[0-9]{1,3}$ ]] || continue
        idx=$((10#$idx))
        if ((idx >= 1 && idx <= count)) && [[ -z ${mac_of[$idx]:-} ]]; then
            mac_of[$idx]=$mac
            log "device index ${idx}: IMDS reports MAC ${mac}"
        fi
    done
}

# ---------------------------------------------------------------------------------------------------- links
# find_link MAC TARGET: sets FOUND (ifname) and FOUND_COUNT. A link already named TARGET wins (a VLAN on it may
# share its MAC).
find_link() {
    local mac=$1 target=$2 f addr name
    FOUND=""
    FOUND_COUNT=0
    for f in "$sysfs_net"/*/address; do
        addr=""
        read -r addr 2>/dev/null <"$f" || continue
        [[ ${addr,,} == "$mac" ]] || continue
        name=${f%/address}
        name=${name##*/}
        if [[ $name == "$target" ]]; then
            FOUND=$name
            FOUND_COUNT=1
            return 0
        fi
        FOUND=$name
        FOUND_COUNT=$((FOUND_COUNT + 1))
    done
}

read_sys() { # read_sys IFNAME ATTR -> SYS_VALUE; fails if the attribute cannot be read
    SYS_VALUE=""
    read -r SYS_VALUE 2>/dev/null <"${sysfs_net}/$1/$2"
}

# configure_link INDEX IFNAME TARGET MAC: rename/MTU/rp_filter/up. Returns 1 (message in CONFIG_ERROR) on failure.
# Every step is skipped when already in the wanted state, so a retry after a partial failure just continues.
configure_link() {
    local idx=$1 cur=$2 target=$3 mac=$4 out actions=()
    CONFIG_ERROR=""
    if [[ $cur != "$target" ]]; then
        if read_sys "$cur" flags && ((SYS_VALUE & 1)); then
            if ! out=$(ip link set dev "$cur" down 2>&1); then
                CONFIG_ERROR="ip link set dev ${cur} down: ${out}"
                return 1
            fi
        fi
        if ! out=$(ip link set dev "$cur" name "$target" 2>&1); then
            CONFIG_ERROR="ip link set dev ${cur} name ${target}: ${out}"
            return 1
        fi
        actions+=("renamed ${cur} -> ${target}")
    fi
    if [[ -n $mtu ]] && ! { read_sys "$target" mtu && [[ $SYS_VALUE == "$mtu" ]]; }; then
        if ! out=$(ip link set dev "$target" mtu "$mtu" 2>&1); then
            CONFIG_ERROR="ip link set dev ${target} mtu ${mtu}: ${out}"
            return 1
        fi
        actions+=("mtu ${mtu}")
    fi
    if ! out=$(sysctl -q -w "net.ipv4.conf.${target}.rp_filter=0" 2>&1); then
        CONFIG_ERROR="sysctl -w net.ipv4.conf.${target}.rp_filter=0: ${out}"
        return 1
    fi
    if ! { read_sys "$target" flags && ((SYS_VALUE & 1)); }; then
        if ! out=$(ip link set dev "$target" up 2>&1); then
            CONFIG_ERROR="ip link set dev ${target} up: ${out}"
            return 1
        fi
        actions+=("up")
    fi
    if ((${#actions[@]} == 0)); then
        log "device index ${idx}: ${target} (MAC ${mac}) already configured"
    else
        log "device index ${idx}: ${target} (MAC ${mac}) configured: $(join ', ' "${actions[@]}"), rp_filter=0"
    fi
}

# write_if_changed PATH CONTENT: atomic write (mode 0644) unless the file already has exactly this content.
write_if_changed() {
    local path=$1 content=$2 current="" tmp
    if [[ -f $path ]] && current=$(<"$path") && [[ $current == "$content" ]]; then
        return 0
    fi
    if ! mkdir -p "${path%/*}" || ! tmp=$(mktemp "${path}.XXXXXX"); then
        err "cannot create a file next to ${path}"
        return 1
    fi
    if ! printf '%s\n' "$content" >"$tmp" || ! chmod 0644 "$tmp" || ! mv -f "$tmp" "$path"; then
        rm -f "$tmp"
        err "cannot write ${path}"
        return 1
    fi
    log "wrote ${path}"
}

# ---------------------------------------------------------------------------------------------------- main
declare -A done_name=() # device index -> configured name
declare -A failed=()    # device index -> permanent failure message
declare -A reason=()    # device index -> why it is not done yet (for progress and timeout lines)
declare -A no_udev_polls=()
declare -A first_seen_ms=() # device index -> when its link was first seen (for the udev-net-manager grace)
declare -A managed_by=()    # device index -> what the nodeadm unit decided, for the summary
declare -A elsewhere=()     # relink only: device index -> MAC of an ENI that is not in the host's namespace
instance_id=""

# net_manager_ready INDEX IFNAME MAC: 0 when the link may be renamed without racing nodeadm's udev-net-manager;
# otherwise sets reason[INDEX] and returns 1. Skipped (0) where the unit does not exist (not the EKS AMI).
net_manager_ready() {
    local i=$1 cur=$2 decision=""
    [[ -f $net_manager_unit ]] || return 0
    if [[ -z $instance_id ]]; then
        if ! imds_get "instance-id" || [[ -z $IMDS_REPLY ]]; then
            reason[$i]="cannot read the instance id from IMDS (needed to find udev-net-manager's decision)"
            return 1
        fi
        instance_id=${IMDS_REPLY//[[:space:]]/}
    fi
    if [[ -f "${net_manager_cache}/${instance_id}/${cur}" ]]; then
        decision=$(<"${net_manager_cache}/${instance_id}/${cur}")
        decision=${decision//[[:space:]]/}
        if [[ $decision != "io.systemd.Network" ]]; then
            managed_by[$i]="not managed by systemd-networkd (udev-net-manager chose '${decision}')"
            return 0
        fi
        if [[ -f "${networkd_dir}/70-eks-${cur}.network" ]]; then
            managed_by[$i]="managed by systemd-networkd (${networkd_dir}/70-eks-${cur}.network)"
            return 0
        fi
        reason[$i]="link ${cur}: waiting for udev-net-manager@${cur} to write ${networkd_dir}/70-eks-${cur}.network"
        return 1
    fi
    now_ms
    first_seen_ms[$i]=${first_seen_ms[$i]:-$NOW_MS}
    if ((NOW_MS - first_seen_ms[$i] < net_manager_grace * 1000)); then
        reason[$i]="link ${cur}: waiting for nodeadm's udev-net-manager@${cur} to take it (no ${net_manager_cache}/${instance_id}/${cur} yet)"
        return 1
    fi
    warn "device index ${i}: udev-net-manager@${cur} did not handle ${cur} within ${net_manager_grace}s; renaming it anyway: systemd-networkd will not manage it"
    managed_by[$i]="NOT managed by systemd-networkd (udev-net-manager never handled it)"
    return 0
}

# evaluate INDEX: try to bring device index INDEX to its final state; sets done_name/failed/reason.
evaluate() {
    local i=$1 target="${prefix}$1" mac cur
    mac=${mac_of[$i]:-}
    if [[ -z $mac ]]; then
        reason[$i]="IMDS reports no ENI at this device index yet"
        return 0
    fi
    find_link "$mac" "$target"
    if ((FOUND_COUNT == 0)); then
        reason[$i]="IMDS reports MAC ${mac} but no link with that MAC exists in ${sysfs_net}"
        if ((relink)); then
            elsewhere[$i]=$mac # relink: a host-device ENI inside a pod's namespace right now
        fi
        return 0
    fi
    if ((FOUND_COUNT > 1)); then
        failed[$i]="several links have MAC ${mac} and none is named ${target}; not guessing"
        return 0
    fi
    cur=$FOUND
    if [[ $cur != "$target" && -e "${sysfs_net}/${target}" ]]; then
        failed[$i]="${target} already exists and is not the ENI with MAC ${mac} (that is ${cur}); left both alone"
        return 0
    fi
    # udev renames a new ENI (eth1 -> ens6) right after the kernel creates it; renaming it ourselves in that window
    # would race with udev. Its database entry n<ifindex> appears once udev has handled the device.
    if [[ $cur != "$target" && -d $udev_data_dir ]]; then
        if read_sys "$cur" ifindex && [[ ! -e "${udev_data_dir}/n${SYS_VALUE}" ]]; then
            no_udev_polls[$i]=$((${no_udev_polls[$i]:-0} + 1))
            if ((no_udev_polls[$i] <= UDEV_GRACE_POLLS)); then
                reason[$i]="link ${cur} (MAC ${mac}) is not yet processed by udev (no ${udev_data_dir}/n${SYS_VALUE})"
                return 0
            fi
            warn "device index ${i}: udev never recorded ${cur} (no ${udev_data_dir}/n${SYS_VALUE}); configuring it anyway"
        fi
    fi
    if [[ $cur != "$target" ]] && ! net_manager_ready "$i" "$cur" "$mac"; then
        return 0
    fi
    if configure_link "$i" "$cur" "$target" "$mac"; then
        done_name[$i]=$target
        unset "reason[$i]"
    else
        # Transient, e.g. udev renamed the link between our look-up and our command: retry on the next poll.
        reason[$i]="configuring ${cur} (MAC ${mac}) failed: ${CONFIG_ERROR}"
    fi
}

# persist: sysctl.d file and one .link file per configured interface.
persist() {
    local i lines=() rc=0
    for ((i = 1; i <= count; i++)); do
        [[ -n ${done_name[$i]:-} ]] || continue
        lines+=("net.ipv4.conf.${done_name[$i]}.rp_filter = 0")
        write_if_changed "${link_dir}/10-${done_name[$i]}.link" "# Written by setup-multus-interfaces.sh: the ENI at device index ${i}.
# PermanentMACAddress (not MACAddress) so that VLANs or bridges that inherit this MAC are not renamed too.
[Match]
PermanentMACAddress=${mac_of[$i]}

[Link]
Name=${done_name[$i]}" || rc=1
    done
    if ((${#lines[@]} > 0)); then
        local IFS=$'\n'
        write_if_changed "${sysctl_dir}/90-multus.conf" "# Written by setup-multus-interfaces.sh: no reverse-path filtering on the Multus ENIs.
${lines[*]}" || rc=1
    fi
    persist_relink || rc=1
    return "$rc"
}

# persist_relink: the udev rule and the oneshot unit that give a returning Multus ENI its stable name back.
persist_relink() {
    local i rules=()
    for ((i = 1; i <= count; i++)); do
        [[ -n ${done_name[$i]:-} ]] || continue
        rules+=("ACTION==\"add\", SUBSYSTEM==\"net\", ATTR{address}==\"${mac_of[$i]}\", KERNEL!=\"${done_name[$i]}\", TAG+=\"systemd\", ENV{SYSTEMD_WANTS}+=\"eks-multus-relink.service\"")
    done
    ((${#rules[@]} > 0)) || return 0
    local IFS=$'\n'
    write_if_changed "${udev_rules_dir}/90-eks-multus-relink.rules" "# Written by setup-multus-interfaces.sh: a Multus ENI that appears under another name than its stable one
# (host-device: its pod's namespace went away without CNI DEL) gets it back from eks-multus-relink.service.
${rules[*]}" || return 1
    write_if_changed "${systemd_unit_dir}/eks-multus-relink.service" "# Written by setup-multus-interfaces.sh (see its header): rename returning Multus ENIs back.
[Unit]
Description=eks-multus-cdk: give Multus ENIs back their stable names
# It reads IMDS; the rule also fires for the ENIs' first add events at boot, before the network is up.
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
Environment=MULTUS_RELINK=1 MULTUS_INTERFACE_COUNT=${count} MULTUS_IFNAME_PREFIX=${prefix}${mtu:+ MULTUS_MTU=${mtu}}
ExecStart=${self_path}"
}

missing_summary() {
    local i parts=()
    for ((i = 1; i <= count; i++)); do
        [[ -n ${done_name[$i]:-} || -n ${failed[$i]:-} ]] && continue
        parts+=("${i} (${reason[$i]:-not evaluated})")
    done
    join '; ' "${parts[@]}"
}

# now_ms: milliseconds since the epoch in NOW_MS (EPOCHREALTIME, bash >= 5; whole seconds otherwise).
now_ms() {
    local t=${EPOCHREALTIME:-}
    if [[ -n $t ]]; then
        t=${t//[!0-9]/}
        NOW_MS=$((10#$t / 1000))
    else
        NOW_MS=$((SECONDS * 1000))
    fi
}

if ((relink)); then
    log "relink: giving Multus ENIs on the host their stable names ${prefix}1..${prefix}${count} (IMDS ${imds})"
else
    log "start: ${count} Multus ENI(s) at device indexes 1..${count} -> ${prefix}1..${prefix}${count}; waiting up to ${wait_seconds}s (IMDS ${imds})"
fi
now_ms
start_ms=$NOW_MS
deadline_ms=$((start_ms + wait_seconds * 1000))
last_progress_ms=$start_ms
declare -A last_reason=()
while :; do
    if ((${#mac_of[@]} < count)); then
        refresh_imds_map || true
    fi
    pending=0
    for ((i = 1; i <= count; i++)); do
        [[ -n ${done_name[$i]:-} || -n ${failed[$i]:-} || -n ${elsewhere[$i]:-} ]] && continue
        evaluate "$i"
        if [[ -n ${failed[$i]:-} ]]; then
            err "device index ${i}: ${failed[$i]}"
        elif [[ -n ${elsewhere[$i]:-} ]]; then
            log "device index ${i}: MAC ${elsewhere[$i]} is not in the host's namespace (a host-device pod has it); left alone"
        elif [[ -z ${done_name[$i]:-} ]]; then
            pending=$((pending + 1))
            if [[ ${reason[$i]} != "${last_reason[$i]:-}" ]]; then
                log "device index ${i}: waiting: ${reason[$i]}"
                last_reason[$i]=${reason[$i]}
            fi
        fi
    done
    ((pending == 0)) && break
    now_ms
    if ((NOW_MS >= deadline_ms)); then
        break
    fi
    if ((NOW_MS - last_progress_ms >= PROGRESS_EVERY * 1000)); then
        log "still waiting after $(((NOW_MS - start_ms) / 1000))s (deadline ${wait_seconds}s) for device index(es): $(missing_summary)"
        last_progress_ms=$NOW_MS
    fi
    sleep "$poll_seconds"
done

status=0
if ((!relink)); then
    persist || status=1
fi
if ((pending > 0)); then
    err "timed out after ${wait_seconds}s; missing device index(es): $(missing_summary)"
    status=1
fi
if ((${#failed[@]} > 0)); then
    err "failed device index(es): ${!failed[*]}"
    status=1
fi
if ((${#done_name[@]} > 0)); then
    all_rp=$(sysctl -n net.ipv4.conf.all.rp_filter 2>/dev/null || echo "?")
    if [[ $all_rp != 0 ]]; then
        warn "net.ipv4.conf.all.rp_filter=${all_rp}: the kernel applies max(all, <interface>), so the per-interface 0 is not effective"
    fi
fi
if ((status == 0)); then
    summary=()
    for ((i = 1; i <= count; i++)); do
        [[ -n ${done_name[$i]:-} ]] && summary+=("${done_name[$i]}=${mac_of[$i]}")
    done
    log "done: ${summary[*]}"
    for ((i = 1; i <= count; i++)); do
        [[ -n ${managed_by[$i]:-} ]] && log "device index ${i}: ${done_name[$i]:-} ${managed_by[$i]}"
    done
else
    err "finished with errors (exit 1); the node boots and joins without the missing Multus interfaces"
fi
exit "$status"
