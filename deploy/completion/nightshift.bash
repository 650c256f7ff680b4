# bash completion for nightshift(1); installed as
# /usr/share/bash-completion/completions/nightshift.
_nightshift() {
  local cur prev cmd
  cur=${COMP_WORDS[COMP_CWORD]}
  prev=${COMP_WORDS[COMP_CWORD-1]}
  cmd=${COMP_WORDS[1]}
  local commands="run check-config probe incidents ack note resolve silence replay --version --help"
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W "$commands" -- "$cur"))
    return
  fi
  case "$prev" in
    -c|--config|-f|--token-file)
      if [ "$cmd" != probe ] || [ "$prev" = -f ]; then
        COMPREPLY=($(compgen -f -- "$cur"))
        return
      fi ;;
    --log-level)
      COMPREPLY=($(compgen -W "debug info warn error" -- "$cur"))
      return ;;
  esac
  case "$cmd" in
    run) COMPREPLY=($(compgen -W "-c --config --log-level --help" -- "$cur")) ;;
    check-config) COMPREPLY=($(compgen -f -W "--help" -- "$cur")) ;;
    probe)
      if [ "$COMP_CWORD" -eq 2 ]; then
        COMPREPLY=($(compgen -W "icmp tcp snmp --help" -- "$cur"))
      else
        case "${COMP_WORDS[2]}" in
          icmp) COMPREPLY=($(compgen -W "-c -p -t -s -f -n -i -q --raw --datagram --help" -- "$cur")) ;;
          tcp) COMPREPLY=($(compgen -W "-p -t --banner --json --help" -- "$cur")) ;;
          snmp) COMPREPLY=($(compgen -W "-v -C -p -t --json --help" -- "$cur")) ;;
        esac
      fi ;;
    incidents) COMPREPLY=($(compgen -W "--all --json --url --token-file --help" -- "$cur")) ;;
    ack|resolve) COMPREPLY=($(compgen -W "--by --url --token-file --help" -- "$cur")) ;;
    note) COMPREPLY=($(compgen -W "--public --by --url --token-file --help" -- "$cur")) ;;
    silence)
      if [ "$COMP_CWORD" -eq 2 ]; then
        COMPREPLY=($(compgen -W "add list rm --help" -- "$cur"))
      else
        COMPREPLY=($(compgen -W "--for --until --comment --by --json --url --token-file --help" -- "$cur"))
      fi ;;
    replay) COMPREPLY=($(compgen -f -W "--prefix --config --interval --syn-timeout --baseline-min-samples --json --help" -- "$cur")) ;;
  esac
}
complete -F _nightshift nightshift
