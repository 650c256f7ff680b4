#!/usr/bin/env python3
"""Writes snmp_exporter_if_mib.yml (see its header)."""
import yaml
HEADER = """# snmp_exporter (Debian's 0.21) configuration for tests/e2e/compat_test.cpp:
# the if_mib module as snmp_exporter's generator writes it from its example
# generator.yml (walk sysUpTime, interfaces, ifXTable; ifAlias, ifDescr and
# ifName as lookups; ifType as EnumAsInfo), with numeric OIDs because Debian
# ships no IF-MIB for the generator to read. ifType's names: the common
# IANAifType ones, as nightshift names them. Written by gen-snmp-exporter-yml.py.
"""
IFT="1.3.6.1.2.1.2.2.1."
IFX="1.3.6.1.2.1.31.1.1.1."
lookups=[{"labels":["ifIndex"],"labelname":"ifAlias","oid":IFX+"18","type":"DisplayString"},
         {"labels":["ifIndex"],"labelname":"ifDescr","oid":IFT+"2","type":"DisplayString"},
         {"labels":["ifIndex"],"labelname":"ifName","oid":IFX+"1","type":"DisplayString"}]
status={1:"up",2:"down",3:"testing",4:"unknown",5:"dormant",6:"notPresent",7:"lowerLayerDown"}
cols=[("ifIndex",IFT+"1","gauge"),("ifType",IFT+"3","EnumAsInfo"),("ifMtu",IFT+"4","gauge"),("ifSpeed",IFT+"5","gauge"),
("ifPhysAddress",IFT+"6","PhysAddress48"),("ifAdminStatus",IFT+"7","gauge"),("ifOperStatus",IFT+"8","gauge"),
("ifLastChange",IFT+"9","gauge"),("ifInOctets",IFT+"10","counter"),("ifInUcastPkts",IFT+"11","counter"),
("ifInNUcastPkts",IFT+"12","counter"),("ifInDiscards",IFT+"13","counter"),("ifInErrors",IFT+"14","counter"),
("ifInUnknownProtos",IFT+"15","counter"),("ifOutOctets",IFT+"16","counter"),("ifOutUcastPkts",IFT+"17","counter"),
("ifOutNUcastPkts",IFT+"18","counter"),("ifOutDiscards",IFT+"19","counter"),("ifOutErrors",IFT+"20","counter"),
("ifOutQLen",IFT+"21","gauge"),
("ifInMulticastPkts",IFX+"2","counter"),("ifInBroadcastPkts",IFX+"3","counter"),("ifOutMulticastPkts",IFX+"4","counter"),
("ifOutBroadcastPkts",IFX+"5","counter"),("ifHCInOctets",IFX+"6","counter"),("ifHCInUcastPkts",IFX+"7","counter"),
("ifHCInMulticastPkts",IFX+"8","counter"),("ifHCInBroadcastPkts",IFX+"9","counter"),("ifHCOutOctets",IFX+"10","counter"),
("ifHCOutUcastPkts",IFX+"11","counter"),("ifHCOutMulticastPkts",IFX+"12","counter"),("ifHCOutBroadcastPkts",IFX+"13","counter"),
("ifLinkUpDownTrapEnable",IFX+"14","gauge"),("ifHighSpeed",IFX+"15","gauge"),("ifPromiscuousMode",IFX+"16","gauge"),
("ifConnectorPresent",IFX+"17","gauge"),("ifCounterDiscontinuityTime",IFX+"19","gauge")]
iftype={1:"other",6:"ethernetCsmacd",23:"ppp",24:"softwareLoopback",53:"propVirtual",62:"fastEther",71:"ieee80211",117:"gigabitEthernet",131:"tunnel",135:"l2vlan",136:"l3ipvlan",150:"mplsTunnel",161:"ieee8023adLag",166:"mpls",209:"bridge"}
metrics=[{"name":"sysUpTime","oid":"1.3.6.1.2.1.1.3","type":"gauge"},{"name":"ifNumber","oid":"1.3.6.1.2.1.2.1","type":"gauge"}]
for n,o,t in cols:
    m={"name":n,"oid":o,"type":t,"indexes":[{"labelname":"ifIndex","type":"gauge"}],"lookups":lookups}
    if n=="ifType": m["enum_values"]=iftype
    if n in ("ifAdminStatus","ifOperStatus"): m["enum_values"]=status
    metrics.append(m)
mod={"if_mib":{"walk":["1.3.6.1.2.1.1.3","1.3.6.1.2.1.2","1.3.6.1.2.1.31.1.1"],"metrics":metrics,
     "version":2,"auth":{"community":"public"},"max_repetitions":25,"retries":1,"timeout":"1s"}}
class D(yaml.SafeDumper):
    def ignore_aliases(self, data): return True
print(HEADER + yaml.dump(mod, Dumper=D, sort_keys=False, default_flow_style=None, width=140))
