"""The classifier's built-in wording: case-insensitive regular expressions, grouped by what they mean.

ClassifyPolicy (parsers/types.py) starts from these; a site adds its own from `[classify]`. Kept apart from
the rules (parsers/classify.py, parsers/cues.py) so a memo that changes DWP's wording changes only this file.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType


def freeze(mapping: Mapping[str, tuple[str, ...]]) -> Mapping[str, tuple[str, ...]]:
    return MappingProxyType(dict(mapping))


# Annex F §5 reasons (domain.md §3), plus the format rules of Annex F §3 and a catch-all. Every entry is a
# regular expression matched case-insensitively; plain phrases work as long as they avoid regex characters.
DEFAULT_REASON_PHRASES: Mapping[str, tuple[str, ...]] = freeze(
    {
        "incorrect-information": (
            r"\bincorrect (information|details?|dates?|names?)\b",
            r"\b(information|details?|dates?) (is|are|was|were) (incorrect|wrong|inaccurate)\b",
            r"\binaccura(te|cies)\b",
            r"\bfactual(ly)? (errors?|incorrect)\b",
        ),
        "employment-status-missing": (
            r"\bemployment status\b",
            r"\b(is|was) (or is not |still )?in (paid )?employment\b",
            r"\bconfirm\w* (of |that |whether )?(the )?customer('s)? (is|was|remains) (still )?(in )?"
            r"(employ|work)",
            r"\bno confirmation (of |whether |that )[^.\n]{0,40}\b(employ|work)",
        ),
        "spelling-grammar": (
            r"\bspelling\b",
            r"\bgramma(r|tical)\b",
            r"\btypo(s|graphical errors?)?\b",
            r"\bproof-?read",
        ),
        "support-not-justified": (
            r"\bsupport (is |was |has )?not (been )?(fully |sufficiently )?(justified|detailed)\b",
            r"\bnot (fully |sufficiently )?justified\b",
            r"\b(insufficient|no|lack of) justification\b",
        ),
        "progress-detail-missing": (
            r"\b(insufficient|not enough|too little|lack of|more|no) (detail|information) "
            r"(on|about|of|regarding) (the )?(customer's )?progress\b",
            r"\bprogress (made )?(during|in|over) the (support|sustainment) period\b",
        ),
        "benefit-not-explained": (
            r"\bhow the support (will|would|is going to) (help|benefit)\b",
            r"\bdoes not explain how\b",
            r"\bbenefits? (of the support )?(is |are |was |were |has |have )?not (been )?explained\b",
        ),
        "format": (
            r"\barial\b",
            r"\b12 ?(pt|point)\b",
            r"\bfonts?\b",
            r"\bplain (english|language)\b",
            r"\bjargon\b",
            r"\bformatting\b",
        ),
    }
)

# Sentences that state this report was rejected. Hedged mentions ("reports that ... will be returned",
# "if your report is rejected", "the previous version was rejected") are filtered by the hedge phrases.
DEFAULT_REJECTION_PHRASES: tuple[str, ...] = (
    # One adverb may sit in between ("has unfortunately been rejected"), but never a negation.
    r"\b(has|have) ((?!not\b|never\b)\w+ )?been (rejected|returned)\b",
    r"\b(is|are) ((?!not\b|never\b)\w+ )?being (rejected|returned)\b",
    r"\b(have|'ve) (rejected|returned) (it|this|the|your)\b",
    r"\b(was|were) ((?!not\b|never\b)\w+ )?(rejected|returned)\b",
    r"\breturned (to you )?for (re-?work|amendments?|corrections?)\b",
    # A person's own words: "I'm sending this plan back to you for changes".
    r"\b(sending|passing|handing|returning) (this|the|your) (\w+ ){0,3}(report|plan|submission|update|"
    r"document)s? back\b",
    r"\bback to you for (changes|amendments?|corrections?|re-?work|revisions?)\b",
    r"\breasons? for (the )?(rejection|return)\b",
    r"\brejected for the following reasons?\b",
    r"\b(does|do|did) not meet the (specified|required) standard\b",
    r"\b(cannot|can ?not|can't|are unable to|is unable to) accept (this|the|your) "
    r"(report|support plan|submission|\w+ month report|exit report|monthly update)\b",
    r"\brejection notice\b",
    # Terse notices: "Rejected - see reasons below", "Outcome: returned for rework".
    r"^\s*rejected\s*(-|:|\.|$)",
    r"\b(status|outcome|decision|result)\s*[:-]\s*(rejected|returned|not accepted)\b",
)
# Matched against the subject only (with any FW: prefixes removed; an RE: subject never counts).
DEFAULT_REJECTION_SUBJECTS: tuple[str, ...] = (
    r"\breject(ed|ion)\b",
    r"\breturned for re-?work\b",
    r"\bnot accepted\b",
)
# Words that, before a phrase in the same clause, make it conditional, general or historical.
DEFAULT_HEDGE_PHRASES: tuple[str, ...] = (
    r"\b(if|unless|whether|where|when|whenever|may|might|will|would|should|could|can)\b",
    r"\b(previous(ly)?|earlier|once)\b",
    r"\b(any|all) reports?\b",
    r"\breports? (that|which)\b",
    r"\bnot\b",
    r"\bno( further| more| other)?\s*$",  # "no amendments required": "no" right before the cue
    r"\bhow to\b",
    # Figures, not a notice: "5 of the 41 reports you submitted were returned", "3 reports returned".
    r"\b\d+ (of (the|your|our) \d+ )?(\w+ )?reports\b",
)
# Words that, after a phrase in the same clause, make it history: "was rejected last month and is now ...".
DEFAULT_HISTORICAL_MARKERS: tuple[str, ...] = (
    r"\b(last|previous|the other) (week|month|quarter|year|time)\b",
    r"\b(earlier|before) (this|that|in the) (week|month|quarter|year)\b",
    r"\b\w+ (days?|weeks?|months?) ago\b",
    r"\bat first\b",
)
DEFAULT_ACCEPTANCE_PHRASES: tuple[str, ...] = (
    r"\b(has|have) (now )?been accepted\b",
    r"\b(is|are|was) (now )?accepted\b",
    r"\bnow meets? the (specified|required) standard\b",
)
DEFAULT_RESUBMISSION_WORDS: tuple[str, ...] = (
    r"\bre-?submi(tted|ssion|t)\b",
    r"\b(amended|revised|corrected)\b",
    r"\b(your|the) (amendments?|changes|corrections?)\b",
)
# Subject words of programme-wide mail; body phrases are kept few because a notice may mention a bulletin.
DEFAULT_BULLETIN_PHRASES: tuple[str, ...] = (
    r"\bbulletin\b",
    r"\bnewsletter\b",
    r"\blive running memo\b",
    r"\bprovider (update|briefing)\b",
)
DEFAULT_BULLETIN_BODY_PHRASES: tuple[str, ...] = (r"\b(sent )?to all (mhss |atw )?providers\b",)
DEFAULT_ACKNOWLEDGEMENT_PHRASES: tuple[str, ...] = (
    r"\bautomated (response|reply|acknowledge?ment|message)\b",
    r"\b(we|this (mailbox|inbox)) (have|has) (now )?received your (e-?mail|message|report|submission)\b",
    r"\byour (e-?mail|message|report|submission) has been received\b",
    r"\backnowledge (the )?receipt\b",
    r"\bconfirm(s|ation)? (of )?(that we have )?receipt\b",
)
# Self-declared automation, for acknowledgements that carry no machine-sent header at all.
DEFAULT_AUTOMATION_PHRASES: tuple[str, ...] = (
    r"\bautomat(ed|ic|ically)\b",
    r"\b(please )?do not reply\b",
    r"\bno-?reply@",
    r"\bunmonitored\b",
)
DEFAULT_OUT_OF_OFFICE_PHRASES: tuple[str, ...] = (
    r"\bout of (the )?office\b",
    r"\bon (annual |parental |maternity |paternity |sick |study )?leave\b",
    r"\baway from (my desk|the office|work)\b",
    r"\bI am (currently )?(away|out|off|not in)\b",
    r"\bI'm (currently )?(away|out|off|not in)\b",
    r"\b(I will|I'll) (be )?(back|return|respond|reply)\b",
    r"\blimited access to (my )?e-?mail\b",
    r"\breturn(ing)? to the office\b",
    r"\b(do not|don't) work on\b",
    r"\bnot working (today|on)\b",
    # Part-time working patterns: "I work Monday to Wednesday and will deal with your message ...".
    r"\b(I|I only) work (on )?(mon|tues|wednes|thurs|fri)days?\b",
    r"\bmy working (days|hours|pattern) (are|is)\b",
    r"\b(deal with|respond to|reply to|answer) your (e-?mail|message) (on|when) (my|I)\b",
)
DEFAULT_ACK_SENDERS: tuple[str, ...] = ("accesstowork.mhss@dwp.gov.uk",)


# The scored reading (parsers/cues.py). A rejection in words no phrase above contains still says two
# things: that our report had a negative outcome, and what the provider must now do about it.
DEFAULT_OUTCOME_CUES: tuple[str, ...] = (
    r"\b(rejected|declined|refused)\b",
    # "returned" of a report, never of a person: "has returned to work" is not an outcome.
    r"\b(has|have|had|is|are|was|were|being|been) (\w+ )?returned\b(?! to (work|the office|duties|post))",
    r"\breturn(ing)? (it|this|them|the \w+( \w+)?) to you\b",
    r"\b(i['’]m|i am|we['’]re|we are) returning (it|this|the|your)\b",
    r"\b(i['’]m|i am|we['’]re|we are|we have|we['’]ve|i have|i['’]ve|had to|have to) (\w+ )?"
    r"(send|sending|sent|pass|passing|passed|hand|handing|handed)\b[^.!?\n]{0,80}?\bback\b",
    r"\bsen(d|ding|t)\b[^.!?\n]{0,80}?\bback to you\b",
    r"\bsent back\b",
    r"\bnot (been |being |yet )?(accepted|approved|signed off|passed)\b",
    r"\b\w+n['’]t (been |being |yet )?(accepted|approved|signed off|passed)\b",
    r"\b(unable|not able|not in a position) to (accept|approve|process|sign (\w+ ){0,2}off|pass)\b",
    r"\b(cannot|can ?not|can['’]t|could not|couldn['’]t|won['’]t|will not) (be able to )?"
    r"(accept|approve|process|sign (\w+ ){0,2}off|pass)\b",
    r"\b(cannot|can ?not|can['’]t|could not|couldn['’]t) be (accepted|approved|processed|signed off)\b",
    r"\b(neither|none)( of them)? (can|could) be (accepted|approved|processed)\b",
    r"\b(not (\w+ )?enough|insufficient|too (many|few|much|little))\b[^.!?\n]{0,80}?\bfor us to "
    r"(accept|approve|process|sign)\b",
    r"\b(does|do|did)(n['’]t| not) (yet |fully )?(meet|satisfy)\b",
    r"\bfail(s|ed)? (to meet|our|the) (\w+ )?(checks?|standards?|requirements|quality|qa|review)\b",
    r"(\bnot|n['’]t) (made it through|got through|get through|passed|cleared) (our |the )?(\w+ )?"
    r"(checks?|review|qa|quality|assessment)\b",
    r"\b\w+n['’]t passed\b",
    r"\b(needs?|requires?|required) (\w+ ){0,3}(amending|amendments?|correcting|corrections?|changes|"
    r"revising|revisions?|re-?work(ing)?|putting right)\b",
    r"\b(needs?|will need|has|have|must) to be (corrected|amended|revised|changed|re-?done|re-?written|"
    r"put right|fixed)\b",
    r"\b(amendments?|corrections?|changes|revisions?|re-?work) (are |is )?(needed|required|necessary)\b",
    r"\bnot (acceptable|satisfactory)\b",
    r"\b(unacceptable|unsatisfactory)\b",
    r"\bbounced (at|by|back)\b",
    # A defect stated as fact is a negative outcome too: "has spelling errors throughout", "isn't in Arial
    # 12", "is for the wrong month", "the employment section has been left blank".
    r"\b(contains?|has|have|with) (\w+ ){0,3}(errors|mistakes|typos|inaccuracies)\b",
    r"\b(is|are|was|were)(n['’]t| not) (written |typed |set |completed )?in arial\b",
    r"\bnot (written|typed|set|completed) in\b",
    r"\b(is|are|was|were)(n['’]t| not) in the (right|correct|required) (format|font|template)\b",
    r"\b(does|do)(n['’]t| not) (explain|say|state|confirm|include|contain|give|cover|describe|set out)\b",
    r"\bthe wrong (number|month|date|dates|name|case|customer|template|font|version|period|employer|"
    r"job title|hours|amount|figures?|reference)\b",
    r"\b(has|have) been left (blank|empty|out|incomplete)\b",
    r"\b(is|are) (missing|incomplete|blank)\b",
    # Welsh, from DWP's bilingual notices: "wedi'i wrthod" (rejected), "dychwelyd" (returned).
    r"\bwedi(['’]i| ei) (wrthod|ddychwelyd)\b",
    r"\b(gwrthod|dychwelyd)\b",
    r"\bheb ei (dderbyn|gymeradwyo)\b",
)
# What DWP asks the provider to do: correct it, and send it again. Requests, not history: "resubmitted" and
# "your resubmission" describe what was done already, so only the base verb counts.
DEFAULT_ACTION_CUES: tuple[str, ...] = (
    r"\bre-?submit\b(?!t)",
    r"\bre-?send\b",
    r"\b(please|kindly|could you|can you|would you( be able to)?|you will need to|you need to|"
    r"we need you to|you must)( please)? (\w+ ){0,2}(correct|amend|revise|fix|rewrite|redo|re-?do|update|"
    r"complete|check and correct)\b",
    r"\b(correct|amend|revise|fix|rewrite|redo)(ing)? (it|this|them|the|your|these|those)\b",
    r"\b(correct|amend|revise|fix|update|complete)\b[^.!?\n]{0,60}?\band (return|send)\b",
    r"\bmake (the|these|those|some|any) (\w+ )?(changes|amendments|corrections)\b",
    r"\bput (it|this|these|them|those|that) right\b",
    r"\bsend\b[^.!?\n]{0,60}?\b(corrected|updated|revised|amended|new) (version|copy|report|plan|"
    r"update|document)\b",
    r"\bsend (it|this|them|the \w+( \w+)?)( back| again| through again)\b",
    r"\b(send|be sent)\b[^.!?\n]{0,40}?\bagain\b",
    r"\bsent (back )?to us again\b",
    r"\b(need|needs|want|require|expect)\b[^.!?\n]{0,20}?\b(a|an|the) (revised|corrected|amended|updated) "
    r"(\w+ )?(version|copy|report|plan|update|document)\b",
    r"\b(revised|corrected|amended|updated) (\w+ )?(version|copy|report|plan|update|document) (should|must|"
    r"needs to|will need to) be (submitted|sent|returned)\b",
    r"\b(pop|put|get|let us have)\b[^.!?\n]{0,40}?\b(back (over|to us)|revised|corrected|amended)\b",
    r"\breturn (it|this|them|the (\w+ )?(report|plan|update|document)) to us\b",
    # Welsh: "ailgyflwyno" (resubmit), "cywirwch" (correct), "diwygiwch" (amend), "ailanfon" (send again).
    r"\b(ailgyflwyno|cywirwch|diwygiwch|ailanfon)\b",
)
# Words that, before a requested action in the same clause, make it conditional, general or already done.
# Narrower than DEFAULT_HEDGE_PHRASES: "could you correct" is a request, not a hedge.
DEFAULT_ACTION_HEDGES: tuple[str, ...] = (
    r"\b(if|unless|whether|should you|in case)\b",
    r"\b(any|all) reports?\b",
    r"\breports? (that|which)\b",
    r"\bproviders? (must|should|need to)\b",
    r"\bhow to\b",
    r"\b(no need|not need|n['’]t need|not necessary|not required|nothing more|no further action) to\b",
    r"\b(previous(ly)?|earlier|last time)\b",
    r"\bthanks? (you )?for\b",
)
# What a rejection is about: our report. reading.py adds the site's report type labels.
DEFAULT_REPORT_WORDS: tuple[str, ...] = (
    r"\b(report|plan|update|submission|document|form)s?\b",
    r"\b(adroddiad|cynllun)\b",
)
