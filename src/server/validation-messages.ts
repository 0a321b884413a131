// A request that fails its schema gets a message in this project's words, naming the field and what it must be;
// the validator's own wording never reaches a client.
interface SchemaIssue {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
}

export function describeValidationErrors(issues: readonly SchemaIssue[], context: string): string {
  const issue = issues[0];
  if (!issue) return `${context} is invalid`;
  const path = `${context}${issue.instancePath.replaceAll("/", ".")}`;
  const { params } = issue;
  switch (issue.keyword) {
    case "required":
      return `${path}.${String(params.missingProperty)} is required`;
    case "additionalProperties":
      return `${path}.${String(params.additionalProperty)} is not a field of this request; see /openapi.json`;
    case "type":
      return `${path} must be ${article(String(params.type))}`;
    case "enum":
      return `${path} must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(", ")}`;
    case "minLength":
      return `${path} must not be empty`;
    case "maxLength":
      return `${path} is longer than ${String(params.limit)} characters`;
    case "minimum":
    case "exclusiveMinimum":
      return `${path} must be ${issue.keyword === "minimum" ? "at least" : "more than"} ${String(params.limit)}`;
    case "maximum":
      return `${path} must be at most ${String(params.limit)}`;
    case "pattern":
      return `${path} is not in the expected form (ids are letters, digits, '-' and '_')`;
    default:
      return `${path} is invalid; see /openapi.json`;
  }
}

function article(type: string): string {
  return type === "integer" || type === "object" || type === "array" ? `an ${type}` : `a ${type}`;
}
