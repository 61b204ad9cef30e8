"""Remediation programmes (补偿方案): entitlements imported per event, rules that compute what
each customer is owed, one legal sign-off for the whole programme, then one case per eligible
customer, approved under the programme."""
