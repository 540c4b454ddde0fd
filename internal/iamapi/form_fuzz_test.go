package iamapi

import "testing"

// FuzzParseForm feeds arbitrary bodies and queries to the parameter
// parser and to everything that reads parameters: none may panic, and a
// parsed form keeps no signature parameter.
func FuzzParseForm(f *testing.F) {
	f.Add("Action=CreateUser&Version=2010-05-08&UserName=alice", "")
	f.Add("Action=CreateRole&Tags.member.1.Key=k&Tags.member.1.Value=v&Tags.member.2.Key=x", "X-Amz-Credential=a%2Fb")
	f.Add("Tags.member.0.Key=k&Tags.member.99999999999999999999.Key=k&Tags.member..=&PolicyArns.member.3=arn", "")
	f.Add("MaxItems=-1&Marker=%ZZ&OnlyAttached=maybe", "a;b")
	f.Add("Marker=dXNlcjI&MaxItems=1", "Action=ListUsers")
	f.Fuzz(func(t *testing.T, body, query string) {
		fm, err := parseForm([]byte(body), query)
		if err != nil {
			return
		}
		for k := range fm.v {
			if len(k) >= 6 && (k[:6] == "X-Amz-" || k[:6] == "x-amz-") {
				t.Fatalf("signature parameter %q kept", k)
			}
		}
		_ = fm.require("Action", "UserName", "")
		_, _, _ = fm.intParam("MaxItems", 1, 1000)
		_, _ = fm.boolParam("OnlyAttached")
		_, _ = fm.structList("Tags")
		_, _ = fm.list("PolicyArns")
		_ = fm.tags()
		_ = fm.hasList("PolicyArns")
		items := []string{"a", "b", "c", "d"}
		out, truncated, marker, err := page(fm, items, func(s string) string { return s })
		if err == nil && truncated && marker == "" {
			t.Fatalf("truncated page %v without a marker", out)
		}
	})
}
